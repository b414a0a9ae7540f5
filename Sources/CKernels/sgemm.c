// Prefill products of FP32 weights without a BLAS: C[t][r] = dot(A[r, :], B[t, :]) for a block of rows and every
// token, reading the weights where they lie (no packed copy of either operand).
//
// The order of additions is that of llama.cpp's tinyBLAS (llamafile/sgemm.cpp, which ggml runs for FP32 matrices
// times two or more tokens): each output keeps `lanes` partial sums (8 in its AVX2 build, 16 in its AVX-512 one),
// lane u summing a[l]·b[l] for l ≡ u (mod lanes) in increasing l with fused multiply-adds; at the end the 16-lane
// sums fold their upper half onto the lower one and the eight lanes add as el_hsum8 does. That order depends only
// on `k` and `lanes`, not on the tiling, the row range, the number of tokens or the thread: splitting rows across
// threads or stages gives the same bits, and every instruction set here (portable, AVX2, AVX-512) gives the same.
#include "edgelab_kernels.h"
#include "internal.h"
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

// The scalar reference of the order, for CPUs without the vector kernels.
static void sgemm_portable(const float *a, size_t lda, const float *b, size_t ldb, size_t k, float *c, size_t ldc,
                           size_t n, size_t r0, size_t r1, int lanes) {
  for (size_t r = r0; r < r1; r++)
    for (size_t t = 0; t < n; t++) {
      const float *ar = a + r * lda, *bt = b + t * ldb;
      float acc[16] = {0};
      for (size_t l = 0; l < k; l += (size_t)lanes)
        for (int u = 0; u < lanes; u++) acc[u] = fmaf(ar[l + u], bt[l + u], acc[u]);
      if (lanes == 16)
        for (int u = 0; u < 8; u++) acc[u] = acc[u] + acc[u + 8];
      float s[4];
      for (int j = 0; j < 4; j++) s[j] = acc[j] + acc[j + 4];
      c[t * ldc + r] = (s[0] + s[2]) + (s[1] + s[3]);
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

// AVX2 tiles of RM rows × RN tokens, eight lanes: RM·RN accumulators held in registers for the whole of k (4 × 3
// uses 12 of the 16 registers, as tinyBLAS does on AVX2).
#define EL_SGEMM8_TILE(RM, RN)                                                                                    \
  __attribute__((target("avx2,fma,f16c"))) static inline void tile8_##RM##x##RN(                                   \
      const float *a, size_t lda, const float *b, size_t ldb, size_t k, float *c, size_t ldc) {                 \
    __m256 acc[RN][RM];                                                                                          \
    for (int j = 0; j < RN; j++)                                                                                 \
      for (int i = 0; i < RM; i++) acc[j][i] = _mm256_setzero_ps();                                              \
    for (size_t l = 0; l < k; l += 8) {                                                                          \
      __m256 bv[RN];                                                                                             \
      for (int j = 0; j < RN; j++) bv[j] = _mm256_loadu_ps(b + j * ldb + l);                                     \
      for (int i = 0; i < RM; i++) {                                                                             \
        __m256 av = _mm256_loadu_ps(a + i * lda + l);                                                            \
        for (int j = 0; j < RN; j++) acc[j][i] = _mm256_fmadd_ps(av, bv[j], acc[j][i]);                          \
      }                                                                                                          \
    }                                                                                                            \
    for (int j = 0; j < RN; j++)                                                                                 \
      for (int i = 0; i < RM; i++) c[j * ldc + i] = el_hsum8_avx2(acc[j][i]);                                    \
  }
EL_SGEMM8_TILE(4, 3)
EL_SGEMM8_TILE(4, 2)
EL_SGEMM8_TILE(4, 1)

// Sixteen lanes on AVX2 (the AVX-512 build's order on a CPU without AVX-512): two registers per output.
#define EL_SGEMM16X2_TILE(RM, RN)                                                                                 \
  __attribute__((target("avx2,fma,f16c"))) static inline void tile16x2_##RM##x##RN(                                \
      const float *a, size_t lda, const float *b, size_t ldb, size_t k, float *c, size_t ldc) {                 \
    __m256 lo[RN][RM], hi[RN][RM];                                                                               \
    for (int j = 0; j < RN; j++)                                                                                 \
      for (int i = 0; i < RM; i++) lo[j][i] = hi[j][i] = _mm256_setzero_ps();                                    \
    for (size_t l = 0; l < k; l += 16) {                                                                         \
      for (int i = 0; i < RM; i++) {                                                                             \
        __m256 a0 = _mm256_loadu_ps(a + i * lda + l), a1 = _mm256_loadu_ps(a + i * lda + l + 8);                 \
        for (int j = 0; j < RN; j++) {                                                                           \
          lo[j][i] = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + j * ldb + l), lo[j][i]);                            \
          hi[j][i] = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + j * ldb + l + 8), hi[j][i]);                        \
        }                                                                                                        \
      }                                                                                                          \
    }                                                                                                            \
    for (int j = 0; j < RN; j++)                                                                                 \
      for (int i = 0; i < RM; i++) c[j * ldc + i] = el_hsum8_avx2(_mm256_add_ps(lo[j][i], hi[j][i]));            \
  }
EL_SGEMM16X2_TILE(2, 3)
EL_SGEMM16X2_TILE(2, 2)
EL_SGEMM16X2_TILE(2, 1)

// AVX-512, sixteen lanes: 4 × 4 tiles. (tinyBLAS's 4 × 6 keeps 31 registers live, which clang spills here: 42–61
// GFLOP/s against 80–94 for 4 × 4 on a Zen 4 core, measured at the shapes of Llama-3.2-1B with 128 tokens.)
#define EL_SGEMM16_TILE(RM, RN)                                                                                   \
  EL_AVX512_LEVEL static inline void tile16_##RM##x##RN(                                                        \
      const float *a, size_t lda, const float *b, size_t ldb, size_t k, float *c, size_t ldc) {                 \
    __m512 acc[RN][RM];                                                                                          \
    for (int j = 0; j < RN; j++)                                                                                 \
      for (int i = 0; i < RM; i++) acc[j][i] = _mm512_setzero_ps();                                              \
    for (size_t l = 0; l < k; l += 16) {                                                                         \
      __m512 bv[RN];                                                                                             \
      for (int j = 0; j < RN; j++) bv[j] = _mm512_loadu_ps(b + j * ldb + l);                                     \
      for (int i = 0; i < RM; i++) {                                                                             \
        __m512 av = _mm512_loadu_ps(a + i * lda + l);                                                            \
        for (int j = 0; j < RN; j++) acc[j][i] = _mm512_fmadd_ps(av, bv[j], acc[j][i]);                          \
      }                                                                                                          \
    }                                                                                                            \
    for (int j = 0; j < RN; j++)                                                                                 \
      for (int i = 0; i < RM; i++) c[j * ldc + i] = el_hsum16_avx512(acc[j][i]);                                           \
  }
EL_SGEMM16_TILE(4, 4)
EL_SGEMM16_TILE(4, 3)
EL_SGEMM16_TILE(4, 2)
EL_SGEMM16_TILE(4, 1)

// Tokens per block: about 384 KiB of B (48 tokens at k = 2048, 12 at k = 8192), which stays in a 1 MiB L2 beside
// the weights' rows, in whole tiles (12 = four AVX2 tiles of 3 tokens, three AVX-512 tiles of 4).
static size_t token_block(size_t k) {
  size_t b = (384u << 10) / (4 * (k ? k : 1)) / 12 * 12;
  return b < 12 ? 12 : b;
}

typedef void (*tile_fn)(const float *a, size_t lda, const float *b, size_t ldb, size_t k, float *c, size_t ldc);

// Rows [r0, r1) in steps of rm, tokens in blocks of `block` (reused from the cache by every step of rows), each
// block in tiles of rn tokens (tiles[rn - 1]; the last tile of a block narrower).
static void run_tiles(const tile_fn *tiles, int rm, int rn, const float *a, size_t lda, const float *b, size_t ldb,
                      size_t k, float *c, size_t ldc, size_t n, size_t r0, size_t r1, size_t block) {
  for (size_t t0 = 0; t0 < n; t0 += block) {
    size_t t1 = t0 + block < n ? t0 + block : n;
    for (size_t r = r0; r < r1; r += (size_t)rm)
      for (size_t t = t0; t < t1; t += (size_t)rn) {
        size_t w = t1 - t < (size_t)rn ? t1 - t : (size_t)rn;
        tiles[w - 1](a + r * lda, lda, b + t * ldb, ldb, k, c + t * ldc + r, ldc);
      }
  }
}
#endif

int el_sgemm_supported(size_t rows, size_t cols, int lanes) {
  return (lanes == 8 || lanes == 16) && rows % 4 == 0 && cols % (size_t)lanes == 0;
}

int el_bf16dp_supported(size_t rows, size_t cols) { return rows % 4 == 0 && cols % 32 == 0; }

void el_sgemm(const float *a, size_t lda, const float *b, size_t ldb, size_t k, float *c, size_t ldc, size_t n,
              size_t r0, size_t r1, int lanes) {
  if (lanes != 8 && lanes != 16) abort();  // a caller's bug (el_sgemm_supported): no order to compute in
#if defined(__x86_64__) || defined(__i386__)
  if (lanes == 16 && el_internal_avx512()) {
    static const tile_fn t[4] = {tile16_4x1, tile16_4x2, tile16_4x3, tile16_4x4};
    run_tiles(t, 4, 4, a, lda, b, ldb, k, c, ldc, n, r0, r1, token_block(k));
    return;
  }
  if (lanes == 16 && el_internal_avx2()) {
    static const tile_fn t[3] = {tile16x2_2x1, tile16x2_2x2, tile16x2_2x3};
    run_tiles(t, 2, 3, a, lda, b, ldb, k, c, ldc, n, r0, r1, token_block(k));
    return;
  }
  if (lanes == 8 && el_internal_avx2()) {
    static const tile_fn t[3] = {tile8_4x1, tile8_4x2, tile8_4x3};
    run_tiles(t, 4, 3, a, lda, b, ldb, k, c, ldc, n, r0, r1, token_block(k));
    return;
  }
#endif
  sgemm_portable(a, lda, b, ldb, k, c, ldc, n, r0, r1, lanes);
}

typedef struct {
  const el_matvec_job *jobs;
  int job_count;
  size_t tokens, chunk;
  int lanes;
  uint16_t **packed;    // per job: the inputs as BF16, for EL_BF16_DP
  _Atomic size_t next;  // next chunk to hand out, over all jobs in order
} sgemm_ctx;

static void sgemm_task(void *raw, int index) {
  (void)index;
  sgemm_ctx *m = raw;
  int j = 0;
  size_t first = 0;    // first chunk index of job j
  float *scratch = 0;  // this thread's widened rows, for weights not stored as FP32
  size_t scratch_values = 0;
  for (;;) {
    size_t c = atomic_fetch_add_explicit(&m->next, 1, memory_order_relaxed);
    for (;;) {  // each thread claims chunks in increasing order, so the job only moves forward
      if (j >= m->job_count) {
        free(scratch);
        return;
      }
      size_t n = (m->jobs[j].rows + m->chunk - 1) / m->chunk;
      if (c < first + n) break;
      first += n;
      j++;
    }
    const el_matvec_job *job = &m->jobs[j];
    size_t r0 = (c - first) * m->chunk, r1 = r0 + m->chunk < job->rows ? r0 + m->chunk : job->rows;
    if (job->dtype == EL_BF16_DP) {
      el_bf16dp_gemm(job->w, job->cols, job->x, job->x_stride, m->packed[j], job->y, job->y_stride, m->tokens, r0, r1);
      continue;
    }
    if (job->dtype == EL_F32) {
      el_sgemm(job->w, job->cols, job->x, job->x_stride, job->cols, job->y, job->y_stride, m->tokens, r0, r1,
               m->lanes);
      continue;
    }
    // Other types: the chunk's rows widened (dequantized) first, exactly, then the same products.
    size_t values = m->chunk * job->cols;
    if (values > scratch_values) {
      free(scratch);
      scratch = malloc(values * sizeof(float));
      scratch_values = values;
      if (!scratch) abort();  // the caller bounds the sizes; a failed allocation here is out of memory
    }
    size_t row_bytes = job->cols / el_block_values(job->dtype) * el_block_bytes(job->dtype);
    el_widen((const char *)job->w + r0 * row_bytes, job->dtype, scratch, (r1 - r0) * job->cols);
    el_sgemm(scratch, job->cols, job->x, job->x_stride, job->cols, job->y + r0, job->y_stride, m->tokens, 0, r1 - r0,
             m->lanes);
  }
}

void el_sgemm_many(const el_matvec_job *jobs, int job_count, size_t tokens, size_t chunk_rows, int lanes,
                   int threads) {
  chunk_rows = chunk_rows < 4 ? 4 : (chunk_rows + 3) / 4 * 4;  // whole tiles of rows
  uint16_t *packed[job_count > 0 ? job_count : 1];
  for (int j = 0; j < job_count; j++) {
    packed[j] = NULL;
    if (jobs[j].dtype == EL_BF16_DP && !(packed[j] = el_bf16dp_pack(jobs[j].x, jobs[j].x_stride, tokens, jobs[j].cols)))
      abort();  // the caller's inputs are in memory already; their BF16 copy is half their size
  }
  sgemm_ctx m = {jobs, job_count, tokens, chunk_rows, lanes, packed, 0};
  el_parallel(threads > 1 ? threads : 1, sgemm_task, &m);
  for (int j = 0; j < job_count; j++) free(packed[j]);
}
