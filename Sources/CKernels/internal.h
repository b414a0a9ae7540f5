#ifndef EDGELAB_KERNELS_INTERNAL_H
#define EDGELAB_KERNELS_INTERNAL_H
// What kernels.c and quant.c share (not part of the module's interface).
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "edgelab_kernels.h"

// IEEE half to float, exactly (subnormals normalised).
static inline float el_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((man & 0x400) == 0) { man <<= 1; exp--; }
      man &= 0x3ff;
      u = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000 | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// A float16 stored at p (any alignment), exactly.
static inline float el_half_at(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return el_half_to_float(h);
}

// A matrix-vector kernel for a group of 1–4 inputs: y[k * ys + r] for inputs k of the group, rows [r0, r1).
typedef void (*el_group_fn)(const void *w, size_t cols, const float *x, size_t xs, float *y, size_t ys, size_t r0,
                            size_t r1);

// Runs a batch through `fns` (fns[n − 1] takes n inputs), four inputs at a time.
void el_run_groups(const el_group_fn fns[4], const void *w, size_t cols, const float *x, size_t xs, size_t batch,
                   float *y, size_t ys, size_t r0, size_t r1);

// Whether the AVX-512 (resp. AVX2, FMA and F16C) kernels run: the CPU has them and EDGELAB_KERNEL_ISA allows them.
int el_internal_avx512(void);
int el_internal_avx2(void);
// Whether the NEON (resp. NEON dot-product) kernels run (aarch64).
int el_internal_neon(void);
int el_internal_neon_dotprod(void);

// The interleaving of the repacked 8-row layouts (EL_Q4_0X8, EL_Q4_KX8): bytes 4k…4k+3 of row j's packed integers
// at 32k + 4j of its group's, for k < chunks (el_interleave4 writes a row's into the group, el_deinterleave4 reads
// them back).
static inline void el_interleave4(uint8_t *group, const uint8_t *row, size_t j, int chunks) {
  for (int k = 0; k < chunks; k++) memcpy(group + 32 * k + 4 * j, row + 4 * k, 4);
}
static inline void el_deinterleave4(uint8_t *row, const uint8_t *group, size_t j, int chunks) {
  for (int k = 0; k < chunks; k++) memcpy(row + 4 * k, group + 32 * k + 4 * j, 4);
}

// Where block i of row r keeps its scale (the return value) and its 16 bytes of packed integers (*qs). A repacked
// Q4_0 matrix interleaves them: those of its 8 rows four bytes at a time (see EL_Q4_0X8); they are gathered into
// `tmp`.
static inline const uint8_t *el_act_weights(const uint8_t *w, el_dtype t, size_t nb, size_t r, size_t i,
                                            const uint8_t **qs, uint8_t tmp[16]) {
  if (t == EL_Q4_0X8) {
    const uint8_t *g = w + ((r / 8) * nb + i) * 144;
    el_deinterleave4(tmp, g + 16, r % 8, 4);
    *qs = tmp;
    return g + 2 * (r % 8);
  }
  const size_t bytes = t == EL_Q8_0 ? 34 : t == EL_Q4_0 ? 18 : t == EL_Q4_1 ? 20 : t == EL_Q5_0 ? 22 : 24;
  const uint8_t *b = w + (r * nb + i) * bytes;
  *qs = b + (t == EL_Q8_0 ? 2 : t == EL_Q4_0 ? 2 : t == EL_Q4_1 ? 4 : t == EL_Q5_0 ? 6 : 8);
  return b;
}

// Sub-block j's 6-bit scale and min of a Q4_K / Q5_K super-block's 12 bytes of scales (ggml's get_scale_min_k4).
static inline void el_k_scale_min(int j, const uint8_t *q, int *d, int *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

// M = Σ_j m_j · (bsums[2j] + bsums[2j + 1]), the integer minimum term of Q4_K and Q5_K with 8-bit inputs.
static inline int32_t el_k_min_term(const uint8_t *scales, const el_act_kblock *a) {
  int32_t m = 0;
  for (int j = 0; j < 8; j++) {
    int sc, mn;
    el_k_scale_min(j, scales, &sc, &mn);
    m += mn * (a->bsums[2 * j] + a->bsums[2 * j + 1]);
  }
  return m;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
// An __m256 summed as ggml's hsum_float_8 and llamafile's hsum: halves, then movehl, then movehdup (el_hsum8).
__attribute__((target("avx2,fma,f16c"))) static inline float el_hsum8_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// The instruction sets of the kernels' "avx512" level (isa() in kernels.c checks exactly these): code compiled with
// it runs only where el_internal_avx512() is true.
#define EL_AVX512_LEVEL __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
// An __m512 summed as GCC's _mm512_reduce_add_ps (ggml's and tinyBLAS's AVX-512 reductions): the upper half onto
// the lower, then as el_hsum8.
EL_AVX512_LEVEL static inline float el_hsum16_avx512(__m512 v) {
  __m256 lo = _mm512_castps512_ps256(v);
  __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return el_hsum8_avx2(_mm256_add_ps(lo, hi));
}
// The sum of eight 32-bit integer lanes.
__attribute__((target("avx2,fma,f16c"))) static inline int32_t el_hsum_i32_avx2(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}
#endif

// BF16 products as AVX512-BF16's dot-product instruction sums them (bf16dot.c): whether this CPU runs the
// instruction itself; the decode product (ggml_vec_dot_bf16's order); the inputs as BF16 (n rows of k, xs apart;
// NULL if out of memory); the prefill product (tinyBLAS's order) of rows [r0, r1), from the inputs and their BF16
// copy. k a multiple of 32 and r0, r1 of 4 for the prefill product.
int el_bf16dp_native(void);
void el_bf16dp_matvec(const void *w, size_t cols, const float *x, size_t xs, size_t batch, float *y, size_t ys,
                      size_t r0, size_t r1);
uint16_t *el_bf16dp_pack(const float *x, size_t xs, size_t n, size_t k);
void el_bf16dp_gemm(const void *w, size_t k, const float *x, size_t xs, const uint16_t *xb, float *c, size_t ldc,
                    size_t n, size_t r0, size_t r1);

// Which of llama.cpp's computations input k of a batch of K-quant products gets (kquant.c), and the portable
// product of one row in that form.
int el_actk_form(el_dtype t, size_t k, size_t batch);
float el_actk_portable(const uint8_t *row, el_dtype t, size_t nb, const el_act_kblock *a, int form);

// The NEON kernels (neon.c; aarch64 only): F32, BF16 and F16 products in exact arithmetic, and llama.cpp's
// arithmetic for the block types with the same bits as the portable functions.
void el_neon_matvec(const void *w, el_dtype t, size_t cols, const float *x, size_t xs, size_t batch, float *y,
                    size_t ys, size_t r0, size_t r1);
void el_neon_act(const void *w, el_dtype t, size_t cols, const el_act_block *x, size_t xs, size_t batch, float *y,
                 size_t ys, size_t r0, size_t r1);
void el_neon_actk(const void *w, el_dtype t, size_t cols, const el_act_kblock *x, size_t xs, size_t batch, float *y,
                  size_t ys, size_t r0, size_t r1);

// The eight-lane float sum of ggml's hsum_float_8: ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
static inline float el_hsum8(const float *a) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}
#endif
