// llama.cpp's arithmetic for the K-quants (Q4_K, Q5_K, Q6_K): inputs quantized to ggml's Q8_K and exact integer
// products per 256-value super-block, then the float operations llama.cpp performs on x86, in its order:
//
//   Q4_K (llama.cpp repacks these matrices into groups of 8 rows on any AVX2 CPU and multiplies them with
//         ggml_gemv_q4_K_8x8_q8_K): per super-block the integer S = Σ_j sc_j · Σ q·a over sub-block j and
//         M = Σ_j m_j · (bsums of sub-block j); acc += S · (d_w·d_a) and acc_m += M · (dmin_w·d_a), both fused;
//         the row's value is acc − acc_m.
//   Q5_K, Q6_K (ggml_vec_dot_q5_K_q8_K, ggml_vec_dot_q6_K_q8_K, AVX2): eight integer lanes per super-block, lane k
//         holding the scaled products of values 4k–4k+3 of every 32 (Q6_K: minus 32·Σ of bsums 2k, 2k+1 × their
//         scales), each lane fused into its own float sum with d_w·d_a; Q5_K adds its minimum term
//         −dmin_w·d_a·M into one float; the lanes are summed as hsum_float_8.
//
// The portable functions compute the same integers and the same float operations as the vector ones, so every
// instruction set gives the same bits.
#include "edgelab_kernels.h"
#include "internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EL_X86 1
#endif

size_t el_act_kblock_bytes(void) { return sizeof(el_act_kblock); }

int el_actk_supported(el_dtype t) { return t == EL_Q4_K || t == EL_Q4_KX8 || t == EL_Q5_K || t == EL_Q6_K; }


// A quantized block's sums of 16 and its scale, once its values are in (every quantizer's last step).
static void finish_act_kblock(el_act_kblock *b, float iscale) {
  for (int j = 0; j < 16; j++) {
    int sum = 0;
    for (int k = 0; k < 16; k++) sum += b->q[16 * j + k];
    b->bsums[j] = (int16_t)sum;
  }
  b->d = 1 / iscale;
}

// ggml's quantize_row_q8_K_ref: the value of largest magnitude maps to −127 (so q = round(−127·x/max), at most
// 127), d = 1/iscale, the product iscale·x rounded to float before it is rounded to an integer (ggml computes it
// without FMA). A block of zeros (or of non-finite values, a broken model) quantizes to zeros.
static void quantize_act_k_portable(const float *x, size_t n, el_act_kblock *out) {
  for (size_t i = 0; i < n / 256; i++) {
    const float *v = x + 256 * i;
    el_act_kblock *b = out + i;
    float max = 0, amax = 0;
    for (int j = 0; j < 256; j++) {
      float ax = fabsf(v[j]);
      if (ax > amax) { amax = ax; max = v[j]; }
    }
    if (!(amax > 0) || !isfinite(amax)) {
      memset(b, 0, sizeof *b);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < 256; j++) {
      float p = iscale * v[j];
      int q = p == p ? (int)nearbyintf(fminf(fmaxf(p, -127.0f), 127.0f)) : 0;
      b->q[j] = (int8_t)q;
    }
    finish_act_kblock(b, iscale);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Portable

// Q4_K. `gemm`: as ggml_gemm_q4_K_8x8_q8_K (a prompt's tokens four at a time), which fuses each 64 values' integers
// (two sub-blocks) into the float sums instead of each super-block's.
static float q4_k_portable(const uint8_t *row, size_t nb, const el_act_kblock *a, int gemm) {
  float acc = 0, accm = 0;
  for (size_t i = 0; i < nb; i++) {
    const uint8_t *b = row + i * 144, *qs = b + 16;
    const el_act_kblock *y = a + i;
    const float dd = el_half_at(b) * y->d, dm = el_half_at(b + 2) * y->d;
    int32_t s = 0, m = 0;
    for (int j = 0; j < 8; j++) {
      int sc, mn;
      el_k_scale_min(j, b + 4, &sc, &mn);
      const uint8_t *q = qs + 32 * (j / 2);
      const int shift = 4 * (j & 1);
      int32_t dot = 0;
      for (int l = 0; l < 32; l++) dot += ((q[l] >> shift) & 0xF) * y->q[32 * j + l];
      s += sc * dot;
      m += mn * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
      if (gemm && (j & 1)) {
        acc = fmaf((float)s, dd, acc);
        accm = fmaf((float)m, dm, accm);
        s = m = 0;
      }
    }
    if (!gemm) {
      acc = fmaf((float)s, dd, acc);
      accm = fmaf((float)m, dm, accm);
    }
  }
  return acc - accm;
}

// Q5_K. `tiled`: as ggml's tiled K-quant matmul (prompts of 8 tokens or more): per super-block the integer S of
// all its sub-blocks and the minimum term M, r = d_w·S − dmin_w·M (fused), sum += r·d_x (fused).
static float q5_k_portable(const uint8_t *row, size_t nb, const el_act_kblock *a, int tiled) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, summs = 0, total = 0;
  for (size_t i = 0; i < nb; i++) {
    const uint8_t *b = row + i * 176, *qh = b + 16, *qs = b + 48;
    const el_act_kblock *y = a + i;
    const float d = y->d * el_half_at(b), dmin = -y->d * el_half_at(b + 2);
    const int32_t m = el_k_min_term(b + 4, y);
    int32_t lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = 0; j < 4; j++) {
      int sc0, sc1, mn;
      el_k_scale_min(2 * j, b + 4, &sc0, &mn);
      el_k_scale_min(2 * j + 1, b + 4, &sc1, &mn);
      for (int k = 0; k < 8; k++) {
        int32_t lo = 0, hi = 0;
        for (int u = 0; u < 4; u++) {
          int l = 4 * k + u;
          int q0 = (qs[32 * j + l] & 0xF) | (((qh[l] >> (2 * j)) & 1) << 4);
          int q1 = (qs[32 * j + l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4);
          lo += q0 * y->q[64 * j + l];
          hi += q1 * y->q[64 * j + 32 + l];
        }
        lane[k] += sc0 * lo + sc1 * hi;
      }
    }
    if (tiled) {
      int32_t sum = 0;
      for (int k = 0; k < 8; k++) sum += lane[k];
      const float r = fmaf(-el_half_at(b + 2), (float)m, el_half_at(b) * (float)sum);
      total = fmaf(r, y->d, total);
      continue;
    }
    summs = fmaf(dmin, (float)m, summs);
    for (int k = 0; k < 8; k++) acc[k] = fmaf(d, (float)lane[k], acc[k]);
  }
  return tiled ? total : el_hsum8(acc) + summs;
}

// Q6_K. `tiled`: as ggml's tiled K-quant matmul: r = d_w·S over the super-block, sum += r·d_x (fused).
static float q6_k_portable(const uint8_t *row, size_t nb, const el_act_kblock *a, int tiled) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, total = 0;
  for (size_t i = 0; i < nb; i++) {
    const uint8_t *b = row + i * 210;
    const int8_t *sc = (const int8_t *)(b + 192);
    const el_act_kblock *y = a + i;
    const float d = y->d * el_half_at(b + 208);
    int32_t lane[8];
    for (int k = 0; k < 8; k++)
      lane[k] = -32 * (y->bsums[2 * k] * sc[2 * k] + y->bsums[2 * k + 1] * sc[2 * k + 1]);
    for (int j = 0; j < 2; j++) {
      const uint8_t *ql = b + 64 * j, *qh = b + 128 + 32 * j;
      for (int t = 0; t < 4; t++) {
        for (int k = 0; k < 8; k++) {
          int32_t dot = 0;
          for (int u = 0; u < 4; u++) {
            int l = 4 * k + u;
            int low = t & 1 ? ql[32 + l] : ql[l];
            int q = ((t < 2 ? low : low >> 4) & 0xF) | (((qh[l] >> (2 * t)) & 3) << 4);
            dot += q * y->q[128 * j + 32 * t + l];
          }
          lane[k] += sc[8 * j + 2 * t + (k >= 4)] * dot;
        }
      }
    }
    if (tiled) {
      int32_t sum = 0;
      for (int k = 0; k < 8; k++) sum += lane[k];
      total = fmaf(el_half_at(b + 208) * (float)sum, y->d, total);
      continue;
    }
    for (int k = 0; k < 8; k++) acc[k] = fmaf(d, (float)lane[k], acc[k]);
  }
  return tiled ? total : el_hsum8(acc);
}

#ifdef EL_X86
// ---------------------------------------------------------------------------------------------------------
// AVX2 (llama.cpp runs its AVX2 code for these types on AVX-512 CPUs too): maddubs pairs unsigned weights with
// signed inputs into 16 bits (at most 2·63·127, no saturation), madd scales them into 32-bit lanes.
#define EL_AVX2 __attribute__((target("avx2,fma,f16c")))

// A float16 by the F16C instruction (the same value as f16, without its branches).
EL_AVX2 static inline float f16c(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// el_quantize_act_k with AVX2: the same largest magnitude (a NaN never taken, as the portable loop's comparison
// never takes it; the first value of that magnitude gives the sign), the same products iscale·x rounded to float,
// clamped and rounded to the nearest even integer (NaN to 0), the same sums and scale.
EL_AVX2 static void quantize_act_k_avx2(const float *x, size_t n, el_act_kblock *out) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (size_t i = 0; i < n / 256; i++) {
    const float *v = x + 256 * i;
    el_act_kblock *b = out + i;
    __m256 m = _mm256_setzero_ps();
    // max_ps returns its second operand when the first is NaN.
    for (int j = 0; j < 256; j += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(v + j), magnitude), m);
    m = _mm256_max_ps(m, _mm256_permute2f128_ps(m, m, 1));
    m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0x4e));
    m = _mm256_max_ps(m, _mm256_shuffle_ps(m, m, 0xb1));
    const float amax = _mm256_cvtss_f32(m);
    if (!(amax > 0) || !isfinite(amax)) {
      memset(b, 0, sizeof *b);
      continue;
    }
    float max = 0;
    for (int j = 0; j < 256; j++) {
      if (fabsf(v[j]) == amax) {
        max = v[j];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 s = _mm256_set1_ps(iscale);
    for (int j = 0; j < 256; j += 32) {
      __m256i q[4];
      for (int k = 0; k < 4; k++) {
        const __m256 p = _mm256_mul_ps(s, _mm256_loadu_ps(v + j + 8 * k));
        const __m256 r =
          _mm256_round_ps(_mm256_min_ps(_mm256_max_ps(p, lo), hi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256 number = _mm256_cmp_ps(p, p, _CMP_ORD_Q);
        q[k] = _mm256_cvtps_epi32(_mm256_and_ps(r, number));
      }
      const __m256i w = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256((__m256i *)(b->q + j), _mm256_permutevar8x32_epi32(w, order));
    }
    finish_act_kblock(b, iscale);
  }
}

// The 8 scales of a Q4_K / Q5_K super-block as 16-bit values (lanes 0–7) and its 8 mins (lanes 8–15).
EL_AVX2 static inline __m256i scales_mins(const uint8_t *scales) {
  uint32_t u[4];
  memcpy(u, scales, 12);
  const uint32_t m1 = 0x3f3f3f3f, m2 = 0x0f0f0f0f, m3 = 0x03030303;
  u[3] = ((u[2] >> 4) & m2) | (((u[1] >> 6) & m3) << 4);
  const uint32_t aux = u[1] & m1;
  u[1] = (u[2] & m2) | (((u[0] >> 6) & m3) << 4);
  u[2] = aux;
  u[0] &= m1;
  return _mm256_cvtepu8_epi16(_mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]));
}

// M from the mins (lanes 8–15 of scales_mins) and the input's sums of 16.
EL_AVX2 static inline int32_t min_term_avx2(__m256i sm, const el_act_kblock *a) {
  const __m256i sums = _mm256_loadu_si256((const __m256i *)a->bsums);
  const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
  const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), pairs);
  __m128i s = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// 16-bit lane i of `scales` in every lane (ggml's get_scale_shuffle_k4).
EL_AVX2 static inline __m256i lane16(__m256i scales, int i) {
  return _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(((2 * i + 1) << 8) | (2 * i))));
}

// One super-block of a Q4_K row times its Q8_K input: its integer totals S and M (lanes 0 and 1 of *t, as floats)
// and d_w·d_x, dmin_w·d_x (lanes 0 and 1 of the result). S and M are reduced together (integers: any order).
EL_AVX2 static inline __m128 q4_k_block(const uint8_t *b, const el_act_kblock *y, __m128 *t) {
  const __m256i m4 = _mm256_set1_epi8(0xF);
  const uint8_t *q4 = b + 16;
  const __m256i sm = scales_mins(b + 4);
  const __m256i scales = _mm256_permute2x128_si256(sm, sm, 0);
  __m256i sumi = _mm256_setzero_si256();
  for (int j = 0; j < 4; j++) {
    const __m256i bits = _mm256_loadu_si256((const __m256i *)(q4 + 32 * j));
    const __m256i lo = _mm256_and_si256(bits, m4), hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
    __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(y->q + 64 * j)));
    __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y->q + 64 * j + 32)));
    p0 = _mm256_madd_epi16(lane16(scales, 2 * j), p0);
    p1 = _mm256_madd_epi16(lane16(scales, 2 * j + 1), p1);
    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
  }
  const __m256i sums = _mm256_loadu_si256((const __m256i *)y->bsums);
  const __m128i pairs = _mm_hadd_epi16(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
  const __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), pairs);
  __m128i s = _mm_hadd_epi32(_mm_add_epi32(_mm256_castsi256_si128(sumi), _mm256_extracti128_si256(sumi, 1)), mins);
  *t = _mm_cvtepi32_ps(_mm_hadd_epi32(s, s));
  int32_t dpair;
  memcpy(&dpair, b, 4);
  return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(dpair)), _mm_set1_ps(y->d));
}

// The row kernels, for AVX2 and for AVX-512 CPUs (kquant_rows.h).
#define EL_KROW_CAT2(a, b) a##b
#define EL_KROW_CAT(a, b) EL_KROW_CAT2(a, b)
#define EL_KROW(name) EL_KROW_CAT(name, EL_KROW_SUFFIX)
#define EL_KROW_TARGET EL_AVX2
#define EL_KROW_SUFFIX _avx2
#include "kquant_rows.h"
#undef EL_KROW_TARGET
#undef EL_KROW_SUFFIX
#define EL_KROW_TARGET EL_AVX512_LEVEL
#define EL_KROW_SUFFIX _avx512
#include "kquant_rows.h"
#undef EL_KROW_TARGET
#undef EL_KROW_SUFFIX

// A Q4_K matrix repacked in groups of 8 rows (EL_Q4_KX8), as llama.cpp repacks Q4_K on x86 and multiplies it with
// ggml_gemv_q4_K_8x8_q8_K (one input) and ggml_gemm_q4_K_8x8_q8_K (a prompt's tokens in fours, which fuses each 64
// values' integers into the float sums): per step four input bytes broadcast to every lane times four bytes of each
// row, so that lane j holds row j's sums; each sub-block's integer scaled by its 6-bit scale in the lanes, the minimum
// term likewise; per row and input, S and M fused with d_w·d_x and dmin_w·d_x into two float sums, subtracted at the
// end — the arithmetic of q4_k_portable, so the same bits for every grouping of rows and inputs and on every
// instruction set. Loop order: per super-block, per 64 values (a pair of sub-blocks: 8 vectors of 32 bytes, low
// nibbles the first sub-block, high the second), per input. AVX2 sums the 16-bit products of a sub-block's eight
// steps before scaling (at most 8·2·15·127, no overflow); VNNI accumulates in 32 bits and multiplies.
#define EL_VNNI_K __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define EL_KSTEP_AVX2(acc, w, a) acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16((w), (a)))
#define EL_KSTEP_VNNI(acc, w, a) acc = _mm256_dpbusd_epi32(acc, (w), (a))
// S += sums × the 8 rows' scales of one sub-block (8 bytes at sc).
#define EL_KSCALE_AVX2(sum, p, sc)                                                                                \
  do {                                                                                                            \
    const __m128i s8_ = _mm_loadl_epi64((const __m128i *)(sc));                                                  \
    sum = _mm256_add_epi32(sum, _mm256_madd_epi16((p), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(s8_, s8_))));      \
  } while (0)
#define EL_KSCALE_VNNI(sum, p, sc)                                                                                \
  sum = _mm256_add_epi32(sum, _mm256_mullo_epi32((p), _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sc)))))

// The 6-bit scales and mins of a repacked super-block (its 12 bytes of scales, byte b of row j at 32 + 8b + j) as
// bytes sc[8·sub-block + row] and mn[8·sub-block + row] (ggml's get_scale_min_k4 for eight rows at once).
EL_AVX2 static inline void q4_kx8_scales(const uint8_t *g, uint8_t sc[64], uint8_t mn[64]) {
  const __m256i a = _mm256_loadu_si256((const __m256i *)(g + 32)), b = _mm256_loadu_si256((const __m256i *)(g + 64));
  const __m256i c = _mm256_loadu_si256((const __m256i *)(g + 96));
  const __m256i m63 = _mm256_set1_epi8(63), m15 = _mm256_set1_epi8(15), m48 = _mm256_set1_epi8(0x30);
  _mm256_storeu_si256((__m256i *)sc, _mm256_and_si256(a, m63));
  _mm256_storeu_si256((__m256i *)mn, _mm256_and_si256(b, m63));
  _mm256_storeu_si256((__m256i *)(sc + 32),
                      _mm256_or_si256(_mm256_and_si256(c, m15), _mm256_and_si256(_mm256_srli_epi16(a, 2), m48)));
  _mm256_storeu_si256((__m256i *)(mn + 32), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m15),
                                                            _mm256_and_si256(_mm256_srli_epi16(b, 2), m48)));
}

EL_AVX2 static inline __m256i bcast4(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

#define EL_Q4_KX8_TILE(NAME, ATTR, STEP, SCALE, NT, GEMM)                                                        \
  ATTR static void NAME(const void *w, size_t cols, const el_act_kblock *x, size_t xs, float *y, size_t ys,     \
                        size_t r) {                                                                             \
    const size_t nb = cols / 256;                                                                               \
    const uint8_t *g0 = (const uint8_t *)w + (r / 8) * nb * 1152;                                               \
    const __m256i m4 = _mm256_set1_epi8(0x0F);                                                                  \
    __m256 acc[NT], accm[NT];                                                                                   \
    for (int t = 0; t < NT; t++) acc[t] = accm[t] = _mm256_setzero_ps();                                        \
    for (size_t ib = 0; ib < nb; ib++) {                                                                        \
      const uint8_t *g = g0 + ib * 1152;                                                                        \
      uint8_t sc[64], mn[64];                                                                                   \
      q4_kx8_scales(g, sc, mn);                                                                                 \
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g));                                   \
      const __m256 dmw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 16)));                           \
      __m256i S[NT], M[NT];                                                                                     \
      for (int t = 0; t < NT; t++) S[t] = M[t] = _mm256_setzero_si256();                                       \
      for (int p = 0; p < 4; p++) {                                                                             \
        const uint8_t *q = g + 128 + 256 * p;                                                                   \
        /* Row j's mins of sub-blocks 2p and 2p + 1 in 16-bit lanes 2j and 2j + 1. */                           \
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(                                             \
          _mm_loadl_epi64((const __m128i *)(mn + 16 * p)), _mm_loadl_epi64((const __m128i *)(mn + 16 * p + 8)))); \
        __m256i wl[8], wh[8];                                                                                   \
        for (int k = 0; k < 8; k++) {                                                                           \
          const __m256i v = _mm256_loadu_si256((const __m256i *)(q + 32 * k));                                  \
          wl[k] = _mm256_and_si256(v, m4);                                                                      \
          wh[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);                                                \
        }                                                                                                       \
        for (int t = 0; t < NT; t++) {                                                                          \
          const el_act_kblock *yb = x + t * xs + ib;                                                            \
          const int8_t *a = yb->q + 64 * p;                                                                     \
          __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();                                     \
          for (int k = 0; k < 8; k++) {                                                                         \
            STEP(lo, wl[k], bcast4(a + 4 * k));                                                                 \
            STEP(hi, wh[k], bcast4(a + 32 + 4 * k));                                                            \
          }                                                                                                     \
          SCALE(S[t], lo, sc + 16 * p);                                                                         \
          SCALE(S[t], hi, sc + 16 * p + 8);                                                                     \
          const int b0 = yb->bsums[4 * p] + yb->bsums[4 * p + 1], b1 = yb->bsums[4 * p + 2] + yb->bsums[4 * p + 3]; \
          const __m256i bp = _mm256_set1_epi32((int)((uint32_t)(uint16_t)b0 | (uint32_t)(uint16_t)b1 << 16));  \
          M[t] = _mm256_add_epi32(M[t], _mm256_madd_epi16(mins, bp));                                           \
          if (GEMM) { /* ggml's gemm: each 64 values fused on their own */                                     \
            const __m256 da = _mm256_set1_ps(yb->d);                                                            \
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S[t]), _mm256_mul_ps(dw, da), acc[t]);                  \
            accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(M[t]), _mm256_mul_ps(dmw, da), accm[t]);               \
            S[t] = M[t] = _mm256_setzero_si256();                                                               \
          }                                                                                                     \
        }                                                                                                       \
      }                                                                                                         \
      if (!GEMM)                                                                                                \
        for (int t = 0; t < NT; t++) {                                                                          \
          const __m256 da = _mm256_set1_ps(x[t * xs + ib].d);                                                   \
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(S[t]), _mm256_mul_ps(dw, da), acc[t]);                    \
          accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(M[t]), _mm256_mul_ps(dmw, da), accm[t]);                 \
        }                                                                                                       \
    }                                                                                                           \
    for (int t = 0; t < NT; t++) _mm256_storeu_ps(y + t * ys + r, _mm256_sub_ps(acc[t], accm[t]));              \
  }
EL_Q4_KX8_TILE(q4_kx8_gemm4_avx2, EL_AVX2, EL_KSTEP_AVX2, EL_KSCALE_AVX2, 4, 1)
EL_Q4_KX8_TILE(q4_kx8_gemv_avx2, EL_AVX2, EL_KSTEP_AVX2, EL_KSCALE_AVX2, 1, 0)
EL_Q4_KX8_TILE(q4_kx8_gemm4_vnni, EL_VNNI_K, EL_KSTEP_VNNI, EL_KSCALE_VNNI, 4, 1)
EL_Q4_KX8_TILE(q4_kx8_gemv_vnni, EL_VNNI_K, EL_KSTEP_VNNI, EL_KSCALE_VNNI, 1, 0)
#endif

// ---------------------------------------------------------------------------------------------------------

typedef float (*el_actk_fn)(const uint8_t *row, size_t nb, const el_act_kblock *a, int form);

float el_actk_portable(const uint8_t *row, el_dtype t, size_t nb, const el_act_kblock *a, int form) {
  return t == EL_Q4_K ? q4_k_portable(row, nb, a, form) : (t == EL_Q5_K ? q5_k_portable(row, nb, a, form)
                                                                        : q6_k_portable(row, nb, a, form));
}

#ifdef EL_X86
static int vnni_k = -1;
#endif

// Which of llama.cpp's computations input k of a batch gets (see the kernels): Q4_K (which llama.cpp repacks on x86)
// with ggml's gemm for a batch's first tokens in whole fours and its gemv for the rest; Q5_K and Q6_K with the tiled matmul for batches
// of 8 or more, vec_dot below.
int el_actk_form(el_dtype t, size_t k, size_t batch) {
  if (t == EL_Q4_K) return k < batch - batch % 4;
  return batch >= 8;
}

// Super-block i of row r of a repacked Q4_K matrix back in the file's layout (144 bytes at out).
static void q4_kx8_gather(const uint8_t *w, size_t nb, size_t r, size_t i, uint8_t *out) {
  const uint8_t *g = w + ((r / 8) * nb + i) * 1152;
  const size_t j = r % 8;
  memcpy(out, g + 2 * j, 2);
  memcpy(out + 2, g + 16 + 2 * j, 2);
  for (int b = 0; b < 12; b++) out[4 + b] = g[32 + 8 * b + j];
  el_deinterleave4(out + 16, g + 128, j, 32);
}

void el_repack_q4_kx8(const void *src, void *dst, size_t rows, size_t cols) {
  const size_t nb = cols / 256;
  const uint8_t *s = src;
  uint8_t *d = dst;
  for (size_t g = 0; g < rows / 8; g++)
    for (size_t i = 0; i < nb; i++) {
      uint8_t *out = d + (g * nb + i) * 1152;
      for (size_t j = 0; j < 8; j++) {
        const uint8_t *b = s + ((g * 8 + j) * nb + i) * 144;
        memcpy(out + 2 * j, b, 2);
        memcpy(out + 16 + 2 * j, b + 2, 2);
        for (int k = 0; k < 12; k++) out[32 + 8 * k + j] = b[4 + k];
        el_interleave4(out + 128, b + 16, j, 32);
      }
    }
}

int el_repack_q4_kx8_wanted(void) {
#ifdef EL_X86
  return el_internal_avx2();
#else
  return 0;
#endif
}

void el_actk_matvec(const void *w, el_dtype t, size_t cols, const el_act_kblock *x, size_t xs, size_t batch,
                    float *y, size_t ys, size_t r0, size_t r1) {
  const size_t nb = cols / 256;
  if (t == EL_Q4_KX8) {
#ifdef EL_X86
    // Rows [r0, r1) are whole groups of 8 (el_matvec_many's chunks). The tokens llama.cpp gives its gemm (a
    // batch's first fours) four at a time, the rest one at a time as its gemv.
    if (el_internal_avx2()) {
      if (vnni_k < 0) {
        __builtin_cpu_init();
        vnni_k = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512dq") && el_internal_avx512();
      }
      const size_t fours = batch - batch % 4;
      for (size_t r = r0; r < r1; r += 8) {
        size_t k = 0;
        for (; k < fours; k += 4) (vnni_k ? q4_kx8_gemm4_vnni : q4_kx8_gemm4_avx2)(w, cols, x + k * xs, xs, y + k * ys, ys, r);
        for (; k < batch; k++) (vnni_k ? q4_kx8_gemv_vnni : q4_kx8_gemv_avx2)(w, cols, x + k * xs, xs, y + k * ys, ys, r);
      }
      return;
    }
#endif
    // Elsewhere (the kernel harness; llama.cpp arithmetic repacks on AVX2 CPUs only) row by row in the file's
    // layout, with the same arithmetic.
    uint8_t *row = malloc(nb * 144 + 1);
    if (!row) abort();
    for (size_t r = r0; r < r1; r++) {
      for (size_t i = 0; i < nb; i++) q4_kx8_gather(w, nb, r, i, row + i * 144);
      for (size_t k = 0; k < batch; k++) y[k * ys + r] = q4_k_portable(row, nb, x + k * xs, el_actk_form(EL_Q4_K, k, batch));
    }
    free(row);
    return;
  }
  const size_t bytes = nb * el_block_bytes(t);
#ifdef EL_X86
  // One input (a decode step): the rows in one loop with the row kernel inlined, no call per row.
  if (batch == 1 && el_internal_avx2()) {
    (el_internal_avx512() ? krows_avx512 : krows_avx2)(t, w, bytes, nb, x, y, r0, r1);
    return;
  }
#endif
  el_actk_fn fn = t == EL_Q4_K ? q4_k_portable : (t == EL_Q5_K ? q5_k_portable : q6_k_portable);
#ifdef EL_X86
  if (el_internal_avx2()) fn = t == EL_Q4_K ? q4_k_avx2 : (t == EL_Q5_K ? q5_k_avx2 : q6_k_avx2);
  if (el_internal_avx512()) fn = t == EL_Q4_K ? q4_k_avx512 : (t == EL_Q5_K ? q5_k_avx512 : q6_k_avx512);
#endif
  if (el_internal_neon()) {
    el_neon_actk(w, t, cols, x, xs, batch, y, ys, r0, r1);
    return;
  }
  for (size_t r = r0; r < r1; r++)
    for (size_t k = 0; k < batch; k++)
      y[k * ys + r] = fn((const uint8_t *)w + r * bytes, nb, x + k * xs, el_actk_form(t, k, batch));
}

void el_quantize_act_k(const float *x, size_t n, el_act_kblock *out) {
#ifdef EL_X86
  if (el_internal_avx2()) {
    quantize_act_k_avx2(x, n, out);
    return;
  }
#endif
  quantize_act_k_portable(x, n, out);
}
