#include "edgelab_kernels.h"
#include "internal.h"
#include <string.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EL_X86 1
#endif
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

// ---------------------------------------------------------------------------------------------------------
// Portable path: the order of the AVX2 kernel (32 partial sums fused in steps of 32 columns, the same reduction,
// the same tail), so that the portable, AVX2 and NEON paths give the same bits. It is ggml's order for F32, F16
// and BF16 dot products on AVX2 (GGML_F32_STEP 32: four 8-lane sums, reduced (0 + 2) + (1 + 3), then as ggml
// reduces each type; the values past the last whole step in double): with inputs rounded as ggml rounds them,
// llama.cpp's bits.

static inline float widen_bf16(uint16_t v) { uint32_t u = (uint32_t)v << 16; float f; memcpy(&f, &u, 4); return f; }

static inline float widen_f16(uint16_t h) { return el_half_to_float(h); }

static inline float load_w(const void *w, el_dtype t, size_t i) {
  switch (t) {
  case EL_F32: return ((const float *)w)[i];
  case EL_BF16: case EL_BF16_GGML: case EL_BF16_DP: return widen_bf16(((const uint16_t *)w)[i]);
  default: return widen_f16(((const uint16_t *)w)[i]);
  }
}

static void matvec_portable(const void *w, el_dtype t, size_t cols, const float *x, size_t xs, size_t batch,
                            float *y, size_t ys, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; r++) {
    size_t base = r * cols;
    for (size_t b = 0; b < batch; b++) {
      const float *xb = x + b * xs;
      float acc[32] = {0};
      size_t c = 0;
      for (; c + 32 <= cols; c += 32)
        for (int k = 0; k < 32; k++) acc[k] = fmaf(load_w(w, t, base + c + k), xb[c + k], acc[k]);
      float u[8], v[4];
      for (int l = 0; l < 8; l++) u[l] = (acc[l] + acc[16 + l]) + (acc[8 + l] + acc[24 + l]);
      for (int l = 0; l < 4; l++) v[l] = u[l] + u[l + 4];
      // ggml's BF16 reduction (movehl, movehdup) or its F32/F16 one, GGML_F32x8_REDUCE (two horizontal adds).
      float s = t == EL_BF16_GGML ? (v[0] + v[2]) + (v[1] + v[3]) : (v[0] + v[1]) + (v[2] + v[3]);
      double tail = s;  // values past the last whole step: their products added in double, as ggml does
      for (; c < cols; c++) tail += (double)(load_w(w, t, base + c) * xb[c]);
      y[b * ys + r] = (float)tail;
    }
  }
}

#ifdef EL_X86
// ---------------------------------------------------------------------------------------------------------
// AVX-512: per input two 16-lane accumulators (32 columns per step), masked tail, fixed reduction.

// One loader per weight type, so the inner loops hold no switch: FP32 as is, BF16 widened by a shift, F16 by
// the F16C conversion (the same values as widening at load).
EL_AVX512_LEVEL
static inline __m512 load16_f32(const void *w, size_t i, __mmask16 m) { return _mm512_maskz_loadu_ps(m, (const float *)w + i); }
EL_AVX512_LEVEL
static inline __m512 load16_bf16(const void *w, size_t i, __mmask16 m) {
  __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
EL_AVX512_LEVEL
static inline __m512 load16_f16(const void *w, size_t i, __mmask16 m) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i));
}

// No software prefetching: on the Zen 4 of 2026-12-07 asking for the lines 5 KiB ahead slowed BF16 from 25 to 19
// GB/s (medians of five interleaved passes over 256 MiB; FP32 28.5). (On an earlier host of the same kind it had
// helped, 25 → 29-31 GB/s; its cost now outweighs it.)
#define EL_PREFETCH_AHEAD 5120
EL_AVX512_LEVEL
static inline void prefetch_f32(const void *w, size_t i) { (void)w; (void)i; }
EL_AVX512_LEVEL
static inline void prefetch_16(const void *w, size_t i) { (void)w; (void)i; }
#define prefetch_bf16 prefetch_16
#define prefetch_f16 prefetch_16

// Per input, four 16-lane accumulators (64 columns per step), reduced as ggml's AVX-512 build reduces its F32 and
// F16 dot products ((0 + 2) + (1 + 3), then el_hsum16_avx512); a masked 16-column tail goes into the first.
// The same order for every group size, so a row's result does not depend on the batch. One function per
// weight type and group size (1–4 inputs) keeps the accumulators in registers and the loop free of branches.
#define EL_AVX512_GROUP(DT, NB)                                                                                    \
  EL_AVX512_LEVEL                                                                                                 \
  static void matvec_avx512_##DT##_##NB(const void *w, size_t cols, const float *x, size_t xs, float *y,          \
                                        size_t ys, size_t r0, size_t r1) {                                       \
    for (size_t r = r0; r < r1; r++) {                                                                           \
      size_t base = r * cols;                                                                                    \
      __m512 a0[NB], a1[NB], a2[NB], a3[NB];                                                                     \
      for (int k = 0; k < NB; k++) a0[k] = a1[k] = a2[k] = a3[k] = _mm512_setzero_ps();                          \
      size_t c = 0;                                                                                              \
      for (; c + 64 <= cols; c += 64) {                                                                          \
        prefetch_##DT(w, base + c);                                                                              \
        __m512 w0 = load16_##DT(w, base + c, 0xffff), w1 = load16_##DT(w, base + c + 16, 0xffff);                \
        __m512 w2 = load16_##DT(w, base + c + 32, 0xffff), w3 = load16_##DT(w, base + c + 48, 0xffff);           \
        for (int k = 0; k < NB; k++) {                                                                           \
          const float *xb = x + k * xs + c;                                                                      \
          a0[k] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xb), a0[k]);                                               \
          a1[k] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), a1[k]);                                          \
          a2[k] = _mm512_fmadd_ps(w2, _mm512_loadu_ps(xb + 32), a2[k]);                                          \
          a3[k] = _mm512_fmadd_ps(w3, _mm512_loadu_ps(xb + 48), a3[k]);                                          \
        }                                                                                                        \
      }                                                                                                          \
      for (; c < cols; c += 16) {                                                                                \
        size_t left = cols - c;                                                                                  \
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);                           \
        __m512 w0 = load16_##DT(w, base + c, m);                                                                 \
        for (int k = 0; k < NB; k++) a0[k] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m, x + k * xs + c), a0[k]); \
      }                                                                                                          \
      for (int k = 0; k < NB; k++)                                                                               \
        y[k * ys + r] = el_hsum16_avx512(_mm512_add_ps(_mm512_add_ps(a0[k], a2[k]), _mm512_add_ps(a1[k], a3[k]))); \
    }                                                                                                            \
  }
#define EL_AVX512_TYPE(DT) EL_AVX512_GROUP(DT, 1) EL_AVX512_GROUP(DT, 2) EL_AVX512_GROUP(DT, 3) EL_AVX512_GROUP(DT, 4)
EL_AVX512_TYPE(f32)
EL_AVX512_TYPE(bf16)
EL_AVX512_TYPE(f16)

static void matvec_avx512(const void *w, el_dtype t, size_t cols, const float *x, size_t xs, size_t batch,
                          float *y, size_t ys, size_t r0, size_t r1) {
  static const el_group_fn f32[4] = {matvec_avx512_f32_1, matvec_avx512_f32_2, matvec_avx512_f32_3, matvec_avx512_f32_4};
  static const el_group_fn bf16[4] = {matvec_avx512_bf16_1, matvec_avx512_bf16_2, matvec_avx512_bf16_3, matvec_avx512_bf16_4};
  static const el_group_fn f16[4] = {matvec_avx512_f16_1, matvec_avx512_f16_2, matvec_avx512_f16_3, matvec_avx512_f16_4};
  el_run_groups(t == EL_F32 ? f32 : (t == EL_BF16 || t == EL_BF16_GGML ? bf16 : f16), w, cols, x, xs, batch, y, ys,
                r0, r1);
}

// AVX2 + FMA + F16C: per input four 8-lane accumulators (32 columns per step), ggml's reduction, then a tail
// summed in double as ggml's; one function per weight type and group size (1–4 inputs), as for AVX-512.
__attribute__((target("avx2,fma,f16c"))) static inline __m256 load8_f32(const void *w, size_t i) {
  return _mm256_loadu_ps((const float *)w + i);
}
__attribute__((target("avx2,fma,f16c"))) static inline __m256 load8_bf16(const void *w, size_t i) {
  __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
__attribute__((target("avx2,fma,f16c"))) static inline __m256 load8_f16(const void *w, size_t i) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + i)));
}
// FP32 reads 128 bytes per step: software prefetching measured slower here (0.87 against 0.95 of llama.cpp).
__attribute__((target("avx2,fma,f16c"))) static inline void prefetch2_f32(const void *w, size_t i) {
  (void)w;
  (void)i;
}
__attribute__((target("avx2,fma,f16c"))) static inline void prefetch2_16(const void *w, size_t i) {
  _mm_prefetch((const char *)((const uint16_t *)w + i) + EL_PREFETCH_AHEAD, _MM_HINT_T0);
}
#define prefetch2_bf16 prefetch2_16
#define prefetch2_f16 prefetch2_16

// The two reductions of ggml's AVX2 dot products: halves then movehl and movehdup (its BF16 one, el_hsum8_avx2), halves then two
// horizontal adds (GGML_F32x8_REDUCE: F32 and F16, and BF16 summed as F32).
__attribute__((target("avx2,fma,f16c")))
static inline float hsum256_hadd(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(_mm_hadd_ps(s, s));
}
#define hsum256_f32 hsum256_hadd
#define hsum256_f16 hsum256_hadd
#define hsum256_bf16g el_hsum8_avx2
#define hsum256_bf16 hsum256_hadd
#define load8_bf16g load8_bf16
#define prefetch2_bf16g prefetch2_16

#define EL_AVX2_GROUP(DT, NB)                                                                                      \
  __attribute__((target("avx2,fma,f16c")))                                                                       \
  static void matvec_avx2_##DT##_##NB(const void *w, size_t cols, const float *x, size_t xs, float *y, size_t ys, \
                                      size_t r0, size_t r1) {                                                    \
    for (size_t r = r0; r < r1; r++) {                                                                           \
      size_t base = r * cols;                                                                                    \
      __m256 a0[NB], a1[NB], a2[NB], a3[NB];                                                                     \
      for (int k = 0; k < NB; k++) a0[k] = a1[k] = a2[k] = a3[k] = _mm256_setzero_ps();                          \
      size_t c = 0;                                                                                              \
      for (; c + 32 <= cols; c += 32) {                                                                          \
        prefetch2_##DT(w, base + c);                                                                             \
        __m256 w0 = load8_##DT(w, base + c), w1 = load8_##DT(w, base + c + 8);                                   \
        __m256 w2 = load8_##DT(w, base + c + 16), w3 = load8_##DT(w, base + c + 24);                             \
        for (int k = 0; k < NB; k++) {                                                                           \
          const float *xb = x + k * xs + c;                                                                      \
          a0[k] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xb), a0[k]);                                               \
          a1[k] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xb + 8), a1[k]);                                           \
          a2[k] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xb + 16), a2[k]);                                          \
          a3[k] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xb + 24), a3[k]);                                          \
        }                                                                                                        \
      }                                                                                                          \
      for (int k = 0; k < NB; k++) {                                                                             \
        const float *xb = x + k * xs;                                                                            \
        double s = hsum256_##DT(_mm256_add_ps(_mm256_add_ps(a0[k], a2[k]), _mm256_add_ps(a1[k], a3[k])));       \
        for (size_t cc = c; cc < cols; cc++) s += (double)(load_w(w, EL_##DT##_TYPE, base + cc) * xb[cc]);       \
        y[k * ys + r] = (float)s;                                                                                \
      }                                                                                                          \
    }                                                                                                            \
  }
#define EL_f32_TYPE EL_F32
#define EL_bf16_TYPE EL_BF16
#define EL_bf16g_TYPE EL_BF16
#define EL_f16_TYPE EL_F16
#define EL_AVX2_TYPE(DT) EL_AVX2_GROUP(DT, 1) EL_AVX2_GROUP(DT, 2) EL_AVX2_GROUP(DT, 3) EL_AVX2_GROUP(DT, 4)
EL_AVX2_TYPE(f32)
EL_AVX2_TYPE(bf16)
EL_AVX2_TYPE(bf16g)
EL_AVX2_TYPE(f16)

static void matvec_avx2(const void *w, el_dtype t, size_t cols, const float *x, size_t xs, size_t batch,
                        float *y, size_t ys, size_t r0, size_t r1) {
  static const el_group_fn f32[4] = {matvec_avx2_f32_1, matvec_avx2_f32_2, matvec_avx2_f32_3, matvec_avx2_f32_4};
  static const el_group_fn bf16[4] = {matvec_avx2_bf16_1, matvec_avx2_bf16_2, matvec_avx2_bf16_3, matvec_avx2_bf16_4};
  static const el_group_fn f16[4] = {matvec_avx2_f16_1, matvec_avx2_f16_2, matvec_avx2_f16_3, matvec_avx2_f16_4};
  static const el_group_fn bf16g[4] = {matvec_avx2_bf16g_1, matvec_avx2_bf16g_2, matvec_avx2_bf16g_3,
                                       matvec_avx2_bf16g_4};
  el_run_groups(t == EL_F32 ? f32 : (t == EL_BF16 ? bf16 : (t == EL_BF16_GGML ? bf16g : f16)), w, cols, x, xs, batch,
                y, ys, r0, r1);
}

#endif

// Instruction sets as levels, so that EDGELAB_KERNEL_ISA can ask for a lesser one: x86 portable < AVX2 (+ FMA, F16C)
// < AVX-512 (F, BW, VL); aarch64 portable < NEON (every aarch64 CPU has it) < NEON with the dot-product instructions.
typedef enum { ISA_UNKNOWN = 0, ISA_PORTABLE = 1, ISA_LEVEL2 = 2, ISA_LEVEL3 = 3 } isa_t;
static isa_t chosen = ISA_UNKNOWN;
static int request_invalid = 0;

#if defined(__aarch64__)
static const char *const isa_names[4] = {"", "portable", "neon", "neon-dotprod"};
#else
static const char *const isa_names[4] = {"", "portable", "avx2", "avx512"};
#endif

static isa_t isa(void);

int el_internal_avx512(void) {
#ifdef EL_X86
  return isa() == ISA_LEVEL3;
#else
  return 0;
#endif
}
int el_internal_avx2(void) {
#ifdef EL_X86
  return isa() >= ISA_LEVEL2;
#else
  return 0;
#endif
}
int el_internal_neon(void) {
#if defined(__aarch64__)
  return isa() >= ISA_LEVEL2;
#else
  return 0;
#endif
}
int el_internal_neon_dotprod(void) {
#if defined(__aarch64__)
  return isa() == ISA_LEVEL3;
#else
  return 0;
#endif
}

void el_run_groups(const el_group_fn fns[4], const void *w, size_t cols, const float *x, size_t xs, size_t batch,
                   float *y, size_t ys, size_t r0, size_t r1) {
  for (size_t b0 = 0; b0 < batch; b0 += 4) {
    size_t nb = batch - b0 < 4 ? batch - b0 : 4;
    fns[nb - 1](w, cols, x + b0 * xs, xs, y + b0 * ys, ys, r0, r1);
  }
}

static isa_t isa(void) {
  if (chosen != ISA_UNKNOWN) return chosen;
  isa_t c = ISA_PORTABLE;
#ifdef EL_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    c = ISA_LEVEL3;
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    c = ISA_LEVEL2;
#elif defined(__aarch64__)
  c = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) ? ISA_LEVEL3 : ISA_LEVEL2;
#endif
  // A lesser instruction set on request (never a greater one than the CPU has).
  const char *want = getenv("EDGELAB_KERNEL_ISA");
  if (want && *want) {
    isa_t cap = ISA_UNKNOWN;
    for (int i = 1; i < 4; i++)
      if (strcmp(want, isa_names[i]) == 0) cap = (isa_t)i;
    if (cap == ISA_UNKNOWN) request_invalid = 1;
    else if (cap < c) c = cap;
  }
  chosen = c;  // Benign race: every thread computes the same value.
  return c;
}

int el_kernel_isa_request_invalid(void) {
  (void)isa();
  return request_invalid;
}

const char *el_kernel_isa(void) { return isa_names[isa()]; }

void el_quant_matvec(const void *w, el_dtype dtype, size_t cols, const float *x, size_t x_stride, size_t batch,
                     float *y, size_t y_stride, size_t row_begin, size_t row_end);
void el_dequantize(const void *src, el_dtype dtype, float *dst, size_t n);

void el_matvec(const void *w, el_dtype dtype, size_t cols, const float *x, size_t x_stride, size_t batch,
               float *y, size_t y_stride, size_t row_begin, size_t row_end) {
  if (dtype == EL_BF16_DP) {
    el_bf16dp_matvec(w, cols, x, x_stride, batch, y, y_stride, row_begin, row_end);
    return;
  }
  if (dtype >= EL_Q8_0 && dtype != EL_BF16_GGML) {
    el_quant_matvec(w, dtype, cols, x, x_stride, batch, y, y_stride, row_begin, row_end);
    return;
  }
  switch (isa()) {
#ifdef EL_X86
  case ISA_LEVEL3: matvec_avx512(w, dtype, cols, x, x_stride, batch, y, y_stride, row_begin, row_end); return;
  case ISA_LEVEL2: matvec_avx2(w, dtype, cols, x, x_stride, batch, y, y_stride, row_begin, row_end); return;
#elif defined(__aarch64__)
  case ISA_LEVEL3:
  case ISA_LEVEL2: el_neon_matvec(w, dtype, cols, x, x_stride, batch, y, y_stride, row_begin, row_end); return;
#endif
  default: matvec_portable(w, dtype, cols, x, x_stride, batch, y, y_stride, row_begin, row_end); return;
  }
}

typedef struct {
  const el_matvec_job *jobs;
  int job_count;
  size_t batch, chunk;
  _Atomic size_t next;  // next chunk to hand out, over all jobs in order
} many_ctx;

static void many_task(void *raw, int index) {
  (void)index;
  many_ctx *m = raw;
  int j = 0;
  size_t first = 0;  // first chunk index of job j
  for (;;) {
    size_t c = atomic_fetch_add_explicit(&m->next, 1, memory_order_relaxed);
    // Chunks are claimed in increasing order by each thread, so the job only moves forward.
    for (;;) {
      if (j >= m->job_count) return;
      size_t n = (m->jobs[j].rows + m->chunk - 1) / m->chunk;
      if (c < first + n) break;
      first += n;
      j++;
    }
    const el_matvec_job *job = &m->jobs[j];
    size_t r0 = (c - first) * m->chunk, r1 = r0 + m->chunk < job->rows ? r0 + m->chunk : job->rows;
    if (job->x_q) {
      el_act_matvec(job->w, job->dtype, job->cols, job->x_q, job->x_q_stride, m->batch, job->y, job->y_stride, r0, r1);
      continue;
    }
    if (job->x_k) {
      el_actk_matvec(job->w, job->dtype, job->cols, job->x_k, job->x_k_stride, m->batch, job->y, job->y_stride, r0, r1);
      continue;
    }
    el_matvec(job->w, job->dtype, job->cols, job->x, job->x_stride, m->batch, job->y, job->y_stride, r0, r1);
  }
}

void el_matvec_many(const el_matvec_job *jobs, int job_count, size_t batch, size_t chunk_rows, int threads) {
  // Chunks of whole 8-row groups, which repacked matrices need (the results do not depend on the chunking).
  chunk_rows = chunk_rows < 8 ? 8 : (chunk_rows + 7) / 8 * 8;
  many_ctx m = {jobs, job_count, batch, chunk_rows, 0};
  el_parallel(threads > 1 ? threads : 1, many_task, &m);
}

void el_attend(const float *q, const float *k, const float *v, size_t ctx, size_t head_dim, float scale,
               float *scores, float *out) {
  float mx = -INFINITY;
  for (size_t j = 0; j < ctx; j++) {
    const float *kj = k + j * head_dim;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t d = 0;
    for (; d + 8 <= head_dim; d += 8)
      for (int u = 0; u < 8; u++) acc[u] += q[d + u] * kj[d + u];
    float s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (; d < head_dim; d++) s += q[d] * kj[d];
    s *= scale;
    scores[j] = s;
    if (s > mx) mx = s;
  }
  float sum = 0;
  for (size_t j = 0; j < ctx; j++) { scores[j] = expf(scores[j] - mx); sum += scores[j]; }
  float inv = 1.0f / sum;
  for (size_t d = 0; d < head_dim; d++) out[d] = 0;
  for (size_t j = 0; j < ctx; j++) {
    float p = scores[j] * inv;
    const float *vj = v + j * head_dim;
    for (size_t d = 0; d < head_dim; d++) out[d] += p * vj[d];
  }
}

#ifdef EL_X86
__attribute__((target("avx2,fma,f16c"))) static void widen_avx2(const void *src, el_dtype t, float *dst, size_t n) {
  size_t i = 0;
  if (t == EL_BF16)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_bf16(src, i));
  else if (t == EL_F16)
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_f16(src, i));
  for (; i < n; i++) dst[i] = load_w(src, t, i);
}
#endif

void el_widen(const void *src, el_dtype dtype, float *dst, size_t n) {
  if (dtype == EL_BF16_GGML || dtype == EL_BF16_DP) dtype = EL_BF16;
  if (dtype >= EL_Q8_0) {
    el_dequantize(src, dtype, dst, n);
    return;
  }
#ifdef EL_X86
  if (isa() >= ISA_LEVEL2) {
    widen_avx2(src, dtype, dst, n);
    return;
  }
#endif
  for (size_t i = 0; i < n; i++) dst[i] = load_w(src, dtype, i);
}

