// BF16 weights times BF16 inputs as the AVX512-BF16 dot-product instruction (VDPBF16PS) sums them, in the orders
// of llama.cpp's AVX-512 build on a CPU that has it (EL_BF16_DP).
//
// VDPBF16PS adds to each of 16 float lanes the products of one pair of BF16 values, the odd element first, each
// with one rounding to nearest even (the products of two BF16 values are exact in float), bfloat16 and float
// denormals read and written as zero. (The odd-first order was checked against the instruction on an AMD Zen 4: the
// same bits on 320,000 lanes of random values over 40 binades; even-first differs on 8%.)
// Decode steps sum as ggml_vec_dot_bf16: two 16-lane sums, one for the first 32 values of every 64 and one for the
// last 32, each reduced as _mm512_reduce_add_ps and added in double, then the values past the last 64 in double.
// Prefill sums as tinyBLAS<32> (llamafile/sgemm.cpp): one 16-lane sum per output over steps of 32, reduced once.
// The portable functions below are the definition; the AVX512-BF16 ones give the same bits with the instruction.
#include "edgelab_kernels.h"
#include "internal.h"
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

static inline float ftz(float v) { return fabsf(v) < FLT_MIN ? copysignf(0.0f, v) : v; }

static inline float bf16_daz(uint16_t h) {
  uint32_t u = (h & 0x7f80) == 0 ? (uint32_t)(h & 0x8000) << 16 : (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// One lane of one instruction: the pair (a[0], b[0]), (a[1], b[1]) added to acc, the odd element first.
static inline float bf16_plain(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline float dp_pair(float acc, const uint16_t *a, const float *b) {
  acc = ftz(fmaf(bf16_daz(a[1]), ftz(b[1]), acc));
  return ftz(fmaf(bf16_daz(a[0]), ftz(b[0]), acc));
}

// _mm512_reduce_add_ps as GCC computes it (upper half onto the lower, then el_hsum8's order).
static inline float reduce16(const float *c) {
  float h[8], s[4];
  for (int u = 0; u < 8; u++) h[u] = c[u] + c[u + 8];
  for (int j = 0; j < 4; j++) s[j] = h[j] + h[j + 4];
  return (s[0] + s[2]) + (s[1] + s[3]);
}

static float vec_dot_portable(const uint16_t *w, const float *x, size_t n) {
  float c1[16] = {0}, c2[16] = {0};
  size_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int j = 0; j < 16; j++) {
      c1[j] = dp_pair(c1[j], w + i + 2 * j, x + i + 2 * j);
      c2[j] = dp_pair(c2[j], w + i + 32 + 2 * j, x + i + 32 + 2 * j);
    }
  double sum = 0;
  sum += (double)reduce16(c1);
  sum += (double)reduce16(c2);
  for (; i < n; i++) sum += (double)(bf16_plain(w[i]) * x[i]);
  return (float)sum;
}

static float tile_dot_portable(const uint16_t *w, const float *x, size_t k) {
  float c[16] = {0};
  for (size_t l = 0; l < k; l += 32)
    for (int j = 0; j < 16; j++) c[j] = dp_pair(c[j], w + l + 2 * j, x + l + 2 * j);
  return reduce16(c);
}

int el_bf16dp_native(void) {
#if defined(__x86_64__)
  static _Atomic int native = -1;  // every thread computes the same value
  int v = atomic_load_explicit(&native, memory_order_relaxed);
  if (v < 0) {
    __builtin_cpu_init();
    v = el_internal_avx512() && __builtin_cpu_supports("avx512bf16");
    atomic_store_explicit(&native, v, memory_order_relaxed);
  }
  return v;
#else
  return 0;
#endif
}

#if defined(__x86_64__)
#include <immintrin.h>
#define EL_BF16T __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

// n floats (BF16 values) as BF16, exactly.
EL_BF16T static void pack_bf16(const float *x, uint16_t *out, size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    _mm512_storeu_si512((void *)(out + i), (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16),
                                                                        _mm512_loadu_ps(x + i)));
  for (; i < n; i++) {
    uint32_t u;
    memcpy(&u, x + i, 4);
    out[i] = (uint16_t)(u >> 16);
  }
}

EL_BF16T static void matvec_native(const uint16_t *w, size_t cols, const float *x, size_t xs, size_t batch, float *y,
                                   size_t ys, size_t r0, size_t r1) {
  if (batch == 0 || cols == 0 || r0 >= r1) return;
  uint16_t *xb = malloc(batch * cols * sizeof(uint16_t));
  if (!xb) abort();  // a few KiB per input
  for (size_t b = 0; b < batch; b++) pack_bf16(x + b * xs, xb + b * cols, cols);
  for (size_t r = r0; r < r1; r++) {
    const uint16_t *wr = w + r * cols;
    for (size_t b = 0; b < batch; b++) {
      const uint16_t *xr = xb + b * cols;
      __m512 c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps();
      size_t i = 0;
      for (; i + 64 <= cols; i += 64) {
        c1 = _mm512_dpbf16_ps(c1, (__m512bh)_mm512_loadu_si512(wr + i), (__m512bh)_mm512_loadu_si512(xr + i));
        c2 = _mm512_dpbf16_ps(c2, (__m512bh)_mm512_loadu_si512(wr + i + 32), (__m512bh)_mm512_loadu_si512(xr + i + 32));
      }
      double sum = 0;
      sum += (double)el_hsum16_avx512(c1);
      sum += (double)el_hsum16_avx512(c2);
      for (; i < cols; i++) sum += (double)(bf16_plain(wr[i]) * x[b * xs + i]);
      y[b * ys + r] = (float)sum;
    }
  }
  free(xb);
}

// Tiles of 4 rows × RN tokens (16 accumulators at most), k a multiple of 32.
#define EL_BF16DP_TILE(RN)                                                                                        \
  EL_BF16T static void tile_##RN(const uint16_t *a, size_t lda, const uint16_t *b, size_t ldb, size_t k, float *c, \
                                 size_t ldc) {                                                                   \
    __m512 acc[RN][4];                                                                                           \
    for (int j = 0; j < RN; j++)                                                                                 \
      for (int i = 0; i < 4; i++) acc[j][i] = _mm512_setzero_ps();                                               \
    for (size_t l = 0; l < k; l += 32) {                                                                         \
      __m512bh bv[RN];                                                                                           \
      for (int j = 0; j < RN; j++) bv[j] = (__m512bh)_mm512_loadu_si512(b + j * ldb + l);                        \
      for (int i = 0; i < 4; i++) {                                                                              \
        __m512bh av = (__m512bh)_mm512_loadu_si512(a + i * lda + l);                                             \
        for (int j = 0; j < RN; j++) acc[j][i] = _mm512_dpbf16_ps(acc[j][i], av, bv[j]);                         \
      }                                                                                                          \
    }                                                                                                            \
    for (int j = 0; j < RN; j++)                                                                                 \
      for (int i = 0; i < 4; i++) c[j * ldc + i] = el_hsum16_avx512(acc[j][i]);                                  \
  }
EL_BF16DP_TILE(1)
EL_BF16DP_TILE(2)
EL_BF16DP_TILE(3)
EL_BF16DP_TILE(4)
#endif

void el_bf16dp_matvec(const void *w, size_t cols, const float *x, size_t xs, size_t batch, float *y, size_t ys,
                      size_t r0, size_t r1) {
#if defined(__x86_64__)
  if (el_bf16dp_native()) {
    matvec_native(w, cols, x, xs, batch, y, ys, r0, r1);
    return;
  }
#endif
  for (size_t r = r0; r < r1; r++)
    for (size_t b = 0; b < batch; b++) y[b * ys + r] = vec_dot_portable((const uint16_t *)w + r * cols, x + b * xs, cols);
}

uint16_t *el_bf16dp_pack(const float *x, size_t xs, size_t n, size_t k) {
  uint16_t *out = malloc(n * k > 0 ? n * k * sizeof(uint16_t) : 1);
  if (!out) return NULL;
  for (size_t t = 0; t < n; t++) {
#if defined(__x86_64__)
    if (el_bf16dp_native()) {
      pack_bf16(x + t * xs, out + t * k, k);
      continue;
    }
#endif
    for (size_t i = 0; i < k; i++) {
      uint32_t u;
      memcpy(&u, x + t * xs + i, 4);
      out[t * k + i] = (uint16_t)(u >> 16);
    }
  }
  return out;
}

void el_bf16dp_gemm(const void *w, size_t k, const float *x, size_t xs, const uint16_t *xb, float *c, size_t ldc,
                    size_t n, size_t r0, size_t r1) {
  const uint16_t *a = w;
#if defined(__x86_64__)
  if (el_bf16dp_native()) {
    typedef void (*tile_fn)(const uint16_t *, size_t, const uint16_t *, size_t, size_t, float *, size_t);
    static const tile_fn tiles[4] = {tile_1, tile_2, tile_3, tile_4};
    for (size_t r = r0; r < r1; r += 4)
      for (size_t t = 0; t < n; t += 4) {
        size_t rn = n - t < 4 ? n - t : 4;
        tiles[rn - 1](a + r * k, k, xb + t * k, k, k, c + t * ldc + r, ldc);
      }
    return;
  }
#endif
  (void)xb;
  for (size_t r = r0; r < r1; r++)
    for (size_t t = 0; t < n; t++) c[t * ldc + r] = tile_dot_portable(a + r * k, x + t * xs, k);
}
