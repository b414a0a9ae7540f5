// The C kernels checked on their own, on whatever CPU runs this (natively, or an aarch64 build under qemu-aarch64):
// Tests/kernels/run.sh builds it against Sources/CKernels and compares its output between instruction sets.
//
// Prints one line per check:
//   isa NAME                 the instruction set the kernels chose (EDGELAB_KERNEL_ISA may lower it)
//   bits WHAT HASH           a hash of the output bits of llama.cpp's arithmetic (input quantizers, products of
//                            every type, prefill's tiled products, BF16 as AVX512-BF16 sums it, attention,
//                            SwiGLU) and of the dequantized weights: the same on every instruction set and CPU
//   order32 exact-TYPE HASH  the exact F32, BF16 and F16 products, which sum in one order (32 partial sums) on
//                            every instruction set but AVX-512: the same bits on those
//   exact TYPE ok ERR        the exact products within 1e-5 of Σ|w·x| of a double-precision reference (the order
//                            of their additions depends on the instruction set, so they are compared by value)
// and exits 1 if a check fails (a product outside the tolerance, or results that depend on the batch, the row
// range or the thread count).
#include "edgelab_kernels.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

static uint32_t lcg = 12345;
static float unit(void) {
  lcg = lcg * 1103515245u + 12345u;
  return (float)((lcg >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

enum { ROWS = 44, COLS = 768, BATCH = 13 };

static const struct {
  el_dtype t;
  const char *name;
} types[] = {
  {EL_F32, "f32"},   {EL_BF16, "bf16"}, {EL_BF16_GGML, "bf16-ggml"}, {EL_F16, "f16"},   {EL_Q8_0, "q8_0"}, {EL_Q4_0, "q4_0"}, {EL_Q4_1, "q4_1"},
  {EL_Q5_0, "q5_0"}, {EL_Q5_1, "q5_1"}, {EL_Q4_K, "q4_k"}, {EL_Q5_K, "q5_k"}, {EL_Q6_K, "q6_k"},
};

static void *weights(el_dtype t, const float *w, size_t n, size_t *bytes) {
  *bytes = n / el_block_values(t) * el_block_bytes(t);
  void *out = malloc(*bytes);
  if (t == EL_F32) {
    memcpy(out, w, n * 4);
  } else if (t == EL_F16) {
    for (size_t i = 0; i < n; i++) ((uint16_t *)out)[i] = el_f32_to_f16(w[i]);
  } else if (t == EL_BF16 || t == EL_BF16_GGML) {
    for (size_t i = 0; i < n; i++) {
      uint32_t u;
      memcpy(&u, &w[i], 4);
      ((uint16_t *)out)[i] = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
    }
  } else {
    el_quantize(w, t, out, n);
  }
  return out;
}

// Rows [0, ROWS) of every input at once, one input at a time (the first `alone` inputs: llama.cpp's arithmetic of
// the K-quants depends on the batch, as llama.cpp's kernels do), and over two threads in chunks: the same bits.
static void check_invariance(const char *name, const float *all, const float *one, const float *threaded,
                             int alone) {
  if (memcmp(all, one, sizeof(float) * ROWS * (size_t)alone) != 0 ||
      memcmp(all, threaded, sizeof(float) * ROWS * BATCH) != 0) {
    printf("FAIL %s: the result depends on the batch or the threads\n", name);
    failures++;
  }
}

int main(void) {
  printf("isa %s\n", el_kernel_isa());
  float *wf = malloc(sizeof(float) * ROWS * COLS), *x = malloc(sizeof(float) * BATCH * COLS);
  for (size_t i = 0; i < ROWS * COLS; i++) wf[i] = unit() * (float)(1 + i % 5) * 0.5f;
  for (size_t i = 0; i < BATCH * COLS; i++) x[i] = unit() * 3.0f;
  x[7] = 0;  // an exact zero among the inputs

  // Input quantizers.
  const size_t nb = COLS / 32, nk = COLS / 256;
  el_act_block *xq = malloc(sizeof(el_act_block) * nb * BATCH);
  el_act_kblock *xk = malloc(sizeof(el_act_kblock) * nk * BATCH);
  for (int b = 0; b < BATCH; b++) {
    el_quantize_act(x + b * COLS, COLS, xq + b * nb);
    el_quantize_act_k(x + b * COLS, COLS, xk + b * nk);
  }
  printf("bits q8 %016llx\n", (unsigned long long)fnv(xq, sizeof(el_act_block) * nb * BATCH, 14695981039346656037ull));
  printf("bits q8k %016llx\n", (unsigned long long)fnv(xk, sizeof(el_act_kblock) * nk * BATCH, 14695981039346656037ull));
  {
    // The K quantizer on values that test its choices (the same bits on every instruction set): a NaN, the largest
    // magnitude twice with either sign (the first decides), an infinity (a block of zeros), zeros, halves that round
    // to even (iscale 1), a NaN first in its block, the largest magnitude positive before its negative, a tiny
    // largest magnitude among zeros (an infinite iscale), denormals and negative zeros.
    static float s[256 * 9];
    for (int i = 0; i < 256 * 9; i++) s[i] = unit() * 2.0f;
    s[3] = NAN;
    s[40] = -5.0f;
    s[41] = 5.0f;
    s[256 + 7] = INFINITY;
    for (int i = 0; i < 256; i++) s[512 + i] = 0;
    for (int i = 0; i < 256; i++) s[768 + i] = (float)(i % 50 - 25) + 0.5f;
    s[768] = -127.0f;
    s[1024] = NAN;
    s[1280 + 255] = -3.0f;
    s[1280 + 9] = 4.0f;
    s[1280 + 10] = -4.0f;
    for (int i = 0; i < 256; i++) s[1536 + i] = i % 3 == 0 ? -0.0f : 0.0f;
    s[1536 + 77] = -1e-38f;
    for (int i = 0; i < 256; i++) s[1792 + i] = (float)(i - 128) * 1e-41f;
    for (int i = 0; i < 256; i += 2) s[2048 + i] = -0.0f;
    el_act_kblock sk[9];
    el_quantize_act_k(s, 256 * 9, sk);
    printf("bits q8k-special %016llx\n", (unsigned long long)fnv(sk, sizeof sk, 14695981039346656037ull));
  }

  el_pool_set_threads(2);
  float y[ROWS * BATCH], y1[ROWS * BATCH], y2[ROWS * BATCH];
  for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
    el_dtype t = types[k].t;
    size_t bytes;
    void *w = weights(t, wf, ROWS * COLS, &bytes);

    // Exact arithmetic against a double-precision reference on the dequantized (widened) weights.
    float *dense = malloc(sizeof(float) * ROWS * COLS);
    el_widen(w, t, dense, ROWS * COLS);
    printf("bits widen-%s %016llx\n", types[k].name,
           (unsigned long long)fnv(dense, sizeof(float) * ROWS * COLS, 14695981039346656037ull));
    el_matvec(w, t, COLS, x, COLS, BATCH, y, ROWS, 0, ROWS);
    for (int b = 0; b < BATCH; b++) el_matvec(w, t, COLS, x + b * COLS, COLS, 1, y1 + b * ROWS, ROWS, 0, ROWS);
    el_matvec_job job = {w, t, ROWS, COLS, x, COLS, y2, ROWS, NULL, 0, NULL, 0};
    el_matvec_many(&job, 1, BATCH, 8, 2);
    check_invariance(types[k].name, y, y1, y2, BATCH);
    double worst = 0;
    for (int b = 0; b < BATCH; b++)
      for (int r = 0; r < ROWS; r++) {
        double ref = 0, scale = 0;
        for (int c = 0; c < COLS; c++) {
          double p = (double)dense[r * COLS + c] * x[b * COLS + c];
          ref += p;
          scale += fabs(p);
        }
        double e = fabs(y[b * ROWS + r] - ref) / (scale > 0 ? scale : 1);
        if (e > worst) worst = e;
      }
    // F32, BF16 and F16 sum in one order on every instruction set but AVX-512 (which has its own).
    if ((t <= EL_F16 || t == EL_BF16_GGML) && strcmp(el_kernel_isa(), "avx512") != 0)
      printf("order32 exact-%s %016llx\n", types[k].name, (unsigned long long)fnv(y, sizeof y, 14695981039346656037ull));
    int ok = worst <= 1e-5;
    if (!ok) failures++;
    printf("exact %s %s %.2e\n", types[k].name, ok ? "ok" : "FAIL", worst);

    // llama.cpp's arithmetic.
    int blocks = el_act_supported(t), super = el_actk_supported(t);
    if (blocks || super) {
      job = (el_matvec_job){w, t, ROWS, COLS, x, COLS, y2, ROWS, blocks ? xq : NULL, nb, super ? xk : NULL, nk};
      el_matvec_many(&job, 1, BATCH, 8, 2);
      for (int b = 0; b < BATCH; b++) {
        if (blocks) {
          el_act_matvec(w, t, COLS, xq + b * nb, nb, 1, y1 + b * ROWS, ROWS, 0, ROWS);
        } else {
          el_actk_matvec(w, t, COLS, xk + b * nk, nk, 1, y1 + b * ROWS, ROWS, 0, ROWS);
        }
      }
      int alone = BATCH;
      if (blocks) {
        el_act_matvec(w, t, COLS, xq, nb, BATCH, y, ROWS, 0, ROWS);
      } else {
        // A batch of 3 computes as single tokens do (llama.cpp's gemm takes fours, its tiled matmul eights).
        el_actk_matvec(w, t, COLS, xk, nk, 3, y, ROWS, 0, ROWS);
        if (memcmp(y, y1, sizeof(float) * ROWS * 3) != 0) {
          printf("FAIL %s: a batch of 3 is not computed as single tokens\n", types[k].name);
          failures++;
        }
        el_actk_matvec(w, t, COLS, xk, nk, BATCH, y, ROWS, 0, ROWS);
        alone = 0;
      }
      check_invariance(types[k].name, y, y1, y2, alone);
      printf("bits %s %016llx\n", types[k].name, (unsigned long long)fnv(y, sizeof y, 14695981039346656037ull));
      if (t == EL_Q4_0) {  // repacked in 8-row groups (whole groups: the first 40 rows): the same bits
        void *packed = malloc(bytes);
        el_repack_q4_0x8(w, packed, 40, COLS);
        memset(y1, 0, sizeof y1);
        el_act_matvec(packed, EL_Q4_0X8, COLS, xq, nb, BATCH, y1, ROWS, 0, 40);
        for (int b = 0; b < BATCH; b++)
          if (memcmp(y + b * ROWS, y1 + b * ROWS, sizeof(float) * 40) != 0) {
            printf("FAIL q4_0x8: the repacked matrix gives other bits\n");
            failures++;
            break;
          }
        free(packed);
      }
      if (t == EL_Q4_K) {  // repacked in 8-row groups: the same bits, whole and by the pool in chunks of 8 rows
        void *packed = malloc(bytes);
        el_repack_q4_kx8(w, packed, 40, COLS);
        memset(y1, 0, sizeof y1);
        memset(y2, 0, sizeof y2);
        el_actk_matvec(packed, EL_Q4_KX8, COLS, xk, nk, BATCH, y1, ROWS, 0, 40);
        job = (el_matvec_job){packed, EL_Q4_KX8, 40, COLS, x, COLS, y2, ROWS, NULL, 0, xk, nk};
        el_matvec_many(&job, 1, BATCH, 8, 2);
        for (int b = 0; b < BATCH; b++)
          if (memcmp(y + b * ROWS, y1 + b * ROWS, sizeof(float) * 40) != 0 ||
              memcmp(y + b * ROWS, y2 + b * ROWS, sizeof(float) * 40) != 0) {
            printf("FAIL q4_kx8: the repacked matrix gives other bits\n");
            failures++;
            break;
          }
        free(packed);
      }
    }
    free(dense);
    free(w);
  }

  // Prefill's tiled products (tinyBLAS's order, 8 and 16 partial sums): against that order written out, the same
  // bits for every row range, token count and thread; BF16 and Q4_0 rows widened first, as FP32 rows of their values.
  for (int lanes = 8; lanes <= 16; lanes += 8) {
    float ref[ROWS * BATCH], all[ROWS * BATCH], one[ROWS * BATCH], many[ROWS * BATCH];
    for (int r = 0; r < ROWS; r++)
      for (int b = 0; b < BATCH; b++) {
        float acc[16] = {0};
        for (int l = 0; l < COLS; l += lanes)
          for (int u = 0; u < lanes; u++) acc[u] = fmaf(wf[r * COLS + l + u], x[b * COLS + l + u], acc[u]);
        float h[8], s[4];
        for (int u = 0; u < 8; u++) h[u] = lanes == 16 ? acc[u] + acc[u + 8] : acc[u];
        for (int j = 0; j < 4; j++) s[j] = h[j] + h[j + 4];
        ref[b * ROWS + r] = (s[0] + s[2]) + (s[1] + s[3]);
      }
    el_sgemm(wf, COLS, x, COLS, COLS, all, ROWS, BATCH, 0, ROWS, lanes);
    for (int b = 0; b < BATCH; b++)
      for (int r0 = 0; r0 < ROWS; r0 += 8)
        el_sgemm(wf, COLS, x + b * COLS, COLS, COLS, one + b * ROWS, ROWS, 1, r0, r0 + 8 < ROWS ? r0 + 8 : ROWS, lanes);
    el_matvec_job job = {.w = wf, .dtype = EL_F32, .rows = ROWS, .cols = COLS, .x = x, .x_stride = COLS, .y = many,
                         .y_stride = ROWS};
    el_sgemm_many(&job, 1, BATCH, 8, lanes, 2);
    if (memcmp(ref, all, sizeof ref) != 0 || memcmp(ref, one, sizeof ref) != 0 || memcmp(ref, many, sizeof ref) != 0) {
      printf("FAIL sgemm%d: other bits than tinyBLAS's order, or bits that depend on the rows, tokens or threads\n",
             lanes);
      failures++;
    }
    printf("bits sgemm%d %016llx\n", lanes, (unsigned long long)fnv(ref, sizeof ref, 14695981039346656037ull));
    for (int k = 0; k < 2; k++) {
      el_dtype t = k == 0 ? EL_BF16 : EL_Q4_0;
      size_t bytes;
      void *w = weights(t, wf, ROWS * COLS, &bytes);
      float *dense = malloc(sizeof(float) * ROWS * COLS);
      el_widen(w, t, dense, ROWS * COLS);
      el_sgemm(dense, COLS, x, COLS, COLS, all, ROWS, BATCH, 0, ROWS, lanes);
      job.w = w;
      job.dtype = t;
      el_sgemm_many(&job, 1, BATCH, 12, lanes, 2);
      if (memcmp(all, many, sizeof all) != 0) {
        printf("FAIL sgemm%d %s: widened a chunk at a time, other bits than widened whole\n", lanes,
               k == 0 ? "bf16" : "q4_0");
        failures++;
      }
      free(dense);
      free(w);
    }
  }

  // BF16 products as AVX512-BF16's dot-product instruction sums them (the instruction where the CPU has it, its
  // definition elsewhere: the same bits), decode's and prefill's orders, on inputs rounded to BF16.
  {
    size_t bytes;
    uint16_t *w = weights(EL_BF16, wf, ROWS * COLS, &bytes);
    float *xr = malloc(sizeof(float) * BATCH * COLS);
    for (size_t i = 0; i < BATCH * COLS; i++) {
      uint32_t u;
      memcpy(&u, &x[i], 4);
      u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
      memcpy(&xr[i], &u, 4);
    }
    float dot[ROWS * BATCH], dot1[ROWS * BATCH], gemm[ROWS * BATCH], gemm2[ROWS * BATCH];
    el_matvec(w, EL_BF16_DP, COLS, xr, COLS, BATCH, dot, ROWS, 0, ROWS);
    for (int b = 0; b < BATCH; b++) el_matvec(w, EL_BF16_DP, COLS, xr + b * COLS, COLS, 1, dot1 + b * ROWS, ROWS, 0, ROWS);
    el_matvec_job job = {.w = w, .dtype = EL_BF16_DP, .rows = ROWS, .cols = COLS, .x = xr, .x_stride = COLS,
                         .y = gemm, .y_stride = ROWS};
    el_sgemm_many(&job, 1, BATCH, 8, 16, 2);
    job.y = gemm2;
    el_sgemm_many(&job, 1, BATCH, 44, 16, 1);
    if (memcmp(dot, dot1, sizeof dot) != 0 || memcmp(gemm, gemm2, sizeof gemm) != 0) {
      printf("FAIL bf16dp: the result depends on the batch, the rows or the threads\n");
      failures++;
    }
    for (int i = 0; i < ROWS * BATCH; i++) {  // both near the exact product
      double ref = 0, mag = 0;
      for (int c = 0; c < COLS; c++) {
        float wv;
        uint32_t u = (uint32_t)w[(i % ROWS) * COLS + c] << 16;
        memcpy(&wv, &u, 4);
        ref += (double)wv * xr[(i / ROWS) * COLS + c];
        mag += fabs((double)wv * xr[(i / ROWS) * COLS + c]);
      }
      if (fabs(dot[i] - ref) > 1e-5 * mag || fabs(gemm[i] - ref) > 1e-5 * mag) {
        printf("FAIL bf16dp: output %d is %g / %g, the product is %g\n", i, dot[i], gemm[i], ref);
        failures++;
        break;
      }
    }
    printf("bits bf16dp-dot %016llx\n", (unsigned long long)fnv(dot, sizeof dot, 14695981039346656037ull));
    printf("bits bf16dp-gemm %016llx\n", (unsigned long long)fnv(gemm, sizeof gemm, 14695981039346656037ull));
    free(w);
    free(xr);
  }

  // Attention (one query over 37 positions of head size 64, both kernels llama.cpp picks) and SwiGLU.
  enum { CTX = 37, HEAD = 64 };
  float q[HEAD], kc[CTX * HEAD], vc[CTX * HEAD], scores[64 * 2], out[HEAD * 2];
  for (int i = 0; i < HEAD; i++) q[i] = unit();
  for (int i = 0; i < CTX * HEAD; i++) {
    kc[i] = el_f16_to_f32(el_f32_to_f16(unit()));
    vc[i] = el_f16_to_f32(el_f32_to_f16(unit()));
  }
  el_attend_ggml(q, kc, vc, CTX, HEAD, 0.125f, scores, out, 1);
  el_attend_ggml(q, kc, vc, CTX, HEAD, 0.125f, scores, out + HEAD, 0);
  printf("bits attend %016llx\n", (unsigned long long)fnv(out, sizeof out, 14695981039346656037ull));
  float g[100], u[100];
  for (int i = 0; i < 100; i++) { g[i] = unit() * 6; u[i] = unit(); }
  el_swiglu_ggml(g, u, 100);
  printf("bits swiglu %016llx\n", (unsigned long long)fnv(g, sizeof g, 14695981039346656037ull));
  free(wf);
  free(x);
  free(xq);
  free(xk);
  return failures ? 1 : 0;
}
