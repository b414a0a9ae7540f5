// llama.cpp's block-quantized weight formats (ggml's Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K):
// dequantization, reference quantization, and matrix-vector kernels that dequantize in registers.
//
// Block layouts (little-endian, packed, as in ggml-common.h):
//   Q8_0  32 values, 34 bytes: f16 d; int8 q[32]                          x = d·q
//   Q4_0  32 values, 18 bytes: f16 d; u8 qs[16] (low nibbles values 0–15, high nibbles 16–31)   x = d·(q − 8)
//   Q4_1  32 values, 20 bytes: f16 d; f16 m; u8 qs[16] (as Q4_0)           x = d·q + m
//   Q5_0  32 values, 22 bytes: f16 d; u8 qh[4] (bit j: value j's fifth bit); u8 qs[16] (as Q4_0)   x = d·(q − 16)
//   Q5_1  32 values, 24 bytes: f16 d; f16 m; u8 qh[4]; u8 qs[16]          x = d·q + m
//   Q4_K  256 values, 144 bytes: f16 d; f16 dmin; u8 scales[12] (8 six-bit scales and mins); u8 qs[128]
//         x = d·sc_j·q − dmin·m_j for sub-block j of 32
//   Q5_K  256 values, 176 bytes: as Q4_K with u8 qh[32] before qs (bit 2i / 2i + 1 of qh[l]: the fifth bit of
//         value l / l + 32 of the i-th 64)
//   Q6_K  256 values, 210 bytes: u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d     x = d·sc_j·(q − 32), j of 16
//
// The kernels multiply float32 inputs by the dequantized weights: no input is quantized, so a product equals
// dequantizing the row and taking the float32 dot product up to the order of the additions. Each output's order
// of additions is fixed by `cols` and the instruction set only (never by the batch, the row range or the thread).
#include "edgelab_kernels.h"
#include "internal.h"
#include <math.h>
#include <string.h>
#include <stdlib.h>

// Dequantization computes each value with separate operations (d·q, then ± m), as llama.cpp's reference
// dequantizers and the gguf package do: never fused, on any target (GCC: build with -ffp-contract=off).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EL_X86 1
#endif


// ---------------------------------------------------------------------------------------------------------
// Half precision

float el_f16_to_f32(uint16_t h) { return el_half_to_float(h); }

uint16_t el_f32_to_f16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = (int32_t)((u >> 23) & 0xff);
  uint32_t man = u & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));  // inf, nan
  int32_t e = exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00);  // overflow to infinity
  if (e <= 0) {                                   // subnormal half, or zero
    if (e < -10) return (uint16_t)sign;
    man |= 0x800000;
    uint32_t shift = (uint32_t)(14 - e);
    uint32_t half = man >> shift, rest = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rest > mid || (rest == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t half = (uint32_t)(e << 10) | (man >> 13), rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;  // may carry into the exponent: still right
  return (uint16_t)(sign | half);
}

static inline void f2h(uint8_t *p, float f) {
  uint16_t h = el_f32_to_f16(f);
  memcpy(p, &h, 2);
}

size_t el_block_values(el_dtype t) {
  switch (t) {
  case EL_Q8_0: case EL_Q4_0: case EL_Q4_1: case EL_Q4_0X8: case EL_Q5_0: case EL_Q5_1: return 32;
  case EL_Q4_K: case EL_Q4_KX8: case EL_Q5_K: case EL_Q6_K: return 256;
  default: return 1;
  }
}

size_t el_block_bytes(el_dtype t) {
  switch (t) {
  case EL_F32: return 4;
  case EL_BF16: case EL_F16: case EL_BF16_GGML: case EL_BF16_DP: return 2;
  case EL_Q8_0: return 34;
  case EL_Q4_0: case EL_Q4_0X8: return 18;
  case EL_Q4_1: return 20;
  case EL_Q5_0: return 22;
  case EL_Q5_1: return 24;
  case EL_Q4_K: case EL_Q4_KX8: return 144;
  case EL_Q5_K: return 176;
  case EL_Q6_K: return 210;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------------------
// Dequantization, one block at a time (llama.cpp's dequantize_row_* order of operations)

static void dequant_block(const uint8_t *b, el_dtype t, float *y) {
  switch (t) {
  case EL_Q8_0: {
    float d = el_half_at(b);
    const int8_t *q = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = q[j] * d;
    return;
  }
  case EL_Q4_0: {
    float d = el_half_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
      y[j] = ((qs[j] & 0x0F) - 8) * d;
      y[j + 16] = ((qs[j] >> 4) - 8) * d;
    }
    return;
  }
  case EL_Q4_1: {
    float d = el_half_at(b), m = el_half_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
      y[j] = (qs[j] & 0x0F) * d + m;
      y[j + 16] = (qs[j] >> 4) * d + m;
    }
    return;
  }
  case EL_Q5_0: case EL_Q5_1: {
    int one = t == EL_Q5_1;
    float d = el_half_at(b), m = one ? el_half_at(b + 2) : 0.0f;
    uint32_t qh;
    memcpy(&qh, b + 2 + 2 * one, 4);
    const uint8_t *qs = b + 6 + 2 * one;
    for (int j = 0; j < 16; j++) {
      int x0 = (qs[j] & 0x0F) | (int)(((qh >> j) << 4) & 0x10), x1 = (qs[j] >> 4) | (int)((qh >> (j + 12)) & 0x10);
      if (one) {
        y[j] = x0 * d + m;
        y[j + 16] = x1 * d + m;
      } else {
        y[j] = (x0 - 16) * d;
        y[j + 16] = (x1 - 16) * d;
      }
    }
    return;
  }
  case EL_Q5_K: {
    float d = el_half_at(b), min = el_half_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *q = b + 48;
    int is = 0;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 256; j += 64) {
      int sc, m;
      el_k_scale_min(is + 0, scales, &sc, &m);
      float d1 = d * sc, m1 = min * m;
      el_k_scale_min(is + 1, scales, &sc, &m);
      float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((q[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
      q += 32;
      is += 2;
      u1 <<= 2;
      u2 <<= 2;
    }
    return;
  }
  case EL_Q4_K: {
    float d = el_half_at(b), min = el_half_at(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    int is = 0;
    for (int j = 0; j < 256; j += 64) {
      int sc, m;
      el_k_scale_min(is + 0, scales, &sc, &m);
      float d1 = d * sc, m1 = min * m;
      el_k_scale_min(is + 1, scales, &sc, &m);
      float d2 = d * sc, m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
    return;
  }
  case EL_Q6_K: {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = el_half_at(b + 208);
    for (int n = 0; n < 256; n += 128) {
      for (int l = 0; l < 32; ++l) {
        int is = l / 16;
        int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
    return;
  }
  default: return;
  }
}

#ifdef EL_X86
// AVX2 dequantization for prefill (every weight of a quantized model is dequantized once per prompt): the same
// operations on each value as dequant_block (a product, then a sum or difference; no fused operations), so the
// same values, eight at a time.
#define EL_DQ __attribute__((target("avx2,fma,f16c")))

EL_DQ static inline float dq_half(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// 16 bytes of nibbles: low nibbles (values 0–15) and high nibbles (16–31) as 32-bit integers, 8 per register.
EL_DQ static inline void dq_nibbles(const uint8_t *p, __m256i q[4]) {
  const __m128i v = _mm_loadu_si128((const __m128i *)p), m = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(v, m), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
  q[0] = _mm256_cvtepu8_epi32(lo);
  q[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8));
  q[2] = _mm256_cvtepu8_epi32(hi);
  q[3] = _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8));
}

EL_DQ static int dequantize_avx2(const uint8_t *b, el_dtype t, float *y, size_t blocks) {
  switch (t) {
  case EL_Q8_0:
    for (size_t i = 0; i < blocks; i++, b += 34, y += 32) {
      const __m256 d = _mm256_set1_ps(dq_half(b));
      for (int k = 0; k < 4; k++) {
        __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + 2 + 8 * k)));
        _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
      }
    }
    return 1;
  case EL_Q4_0:
    for (size_t i = 0; i < blocks; i++, b += 18, y += 32) {
      const __m256 d = _mm256_set1_ps(dq_half(b));
      __m256i q[4];
      dq_nibbles(b + 2, q);
      for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q[k], _mm256_set1_epi32(8))), d));
    }
    return 1;
  case EL_Q4_1:
    for (size_t i = 0; i < blocks; i++, b += 20, y += 32) {
      const __m256 d = _mm256_set1_ps(dq_half(b)), m = _mm256_set1_ps(dq_half(b + 2));
      __m256i q[4];
      dq_nibbles(b + 4, q);
      for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(y + 8 * k, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q[k]), d), m));
    }
    return 1;
  case EL_Q4_K:
    for (size_t i = 0; i < blocks; i++, b += 144) {
      const float d = dq_half(b), min = dq_half(b + 2);
      const uint8_t *q = b + 16;
      for (int j = 0; j < 4; j++, q += 32) {
        int sc, m;
        el_k_scale_min(2 * j, b + 4, &sc, &m);
        const __m256 d1 = _mm256_set1_ps(d * sc), m1 = _mm256_set1_ps(min * m);
        el_k_scale_min(2 * j + 1, b + 4, &sc, &m);
        const __m256 d2 = _mm256_set1_ps(d * sc), m2 = _mm256_set1_ps(min * m);
        for (int k = 0; k < 4; k++) {
          __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * k)));
          __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(0xF)));
          __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
          _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d1, lo), m1));
          _mm256_storeu_ps(y + 32 + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d2, hi), m2));
        }
        y += 64;
      }
    }
    return 1;
  case EL_Q6_K:
    for (size_t i = 0; i < blocks; i++, b += 210, y += 256) {
      const float d = dq_half(b + 208);
      const int8_t *sc = (const int8_t *)(b + 192);
      for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;
        for (int l = 0; l < 32; l += 8) {
          const int is = 8 * n + l / 16;
          __m256i a = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ql + l)));
          __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(ql + 32 + l)));
          __m256i h = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qh + l)));
          const __m256i low = _mm256_set1_epi32(0xF), three = _mm256_set1_epi32(3), off = _mm256_set1_epi32(32);
          __m256i q1 = _mm256_sub_epi32(_mm256_or_si256(_mm256_and_si256(a, low), _mm256_slli_epi32(_mm256_and_si256(h, three), 4)), off);
          __m256i q2 = _mm256_sub_epi32(_mm256_or_si256(_mm256_and_si256(c, low), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2), three), 4)), off);
          __m256i q3 = _mm256_sub_epi32(_mm256_or_si256(_mm256_srli_epi32(a, 4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 4), three), 4)), off);
          __m256i q4 = _mm256_sub_epi32(_mm256_or_si256(_mm256_srli_epi32(c, 4), _mm256_slli_epi32(_mm256_srli_epi32(h, 6), 4)), off);
          float *o = y + 128 * n + l;
          _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_set1_ps(d * sc[is + 0]), _mm256_cvtepi32_ps(q1)));
          _mm256_storeu_ps(o + 32, _mm256_mul_ps(_mm256_set1_ps(d * sc[is + 2]), _mm256_cvtepi32_ps(q2)));
          _mm256_storeu_ps(o + 64, _mm256_mul_ps(_mm256_set1_ps(d * sc[is + 4]), _mm256_cvtepi32_ps(q3)));
          _mm256_storeu_ps(o + 96, _mm256_mul_ps(_mm256_set1_ps(d * sc[is + 6]), _mm256_cvtepi32_ps(q4)));
        }
      }
    }
    return 1;
  default: return 0;
  }
}
#endif

void el_dequantize(const void *src, el_dtype t, float *dst, size_t n) {
  size_t qk = el_block_values(t), bs = el_block_bytes(t);
  const uint8_t *b = src;
#ifdef EL_X86
  if (el_internal_avx2() && dequantize_avx2(b, t, dst, n / qk)) return;
#endif
  for (size_t i = 0; i < n / qk; i++) dequant_block(b + i * bs, t, dst + i * qk);
}

// ---------------------------------------------------------------------------------------------------------
// Quantization

static inline int nearest_int(float f) { return (int)lrintf(f); }

static void quant_block(const float *x, el_dtype t, uint8_t *b) {
  switch (t) {
  case EL_Q8_0: {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    f2h(b, d);
    for (int j = 0; j < 32; j++) ((int8_t *)(b + 2))[j] = (int8_t)roundf(x[j] * id);
    return;
  }
  case EL_Q4_0: {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
      if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    float d = max / -8, id = d ? 1.0f / d : 0.0f;
    f2h(b, d);
    for (int j = 0; j < 16; j++) {
      int a = (int)(x[j] * id + 8.5f), c = (int)(x[j + 16] * id + 8.5f);
      a = a < 15 ? a : 15;
      c = c < 15 ? c : 15;
      b[2 + j] = (uint8_t)(a | (c << 4));
    }
    return;
  }
  case EL_Q4_1: {
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < 32; j++) { min = fminf(min, x[j]); max = fmaxf(max, x[j]); }
    float d = (max - min) / 15, id = d ? 1.0f / d : 0.0f;
    f2h(b, d);
    f2h(b + 2, min);
    for (int j = 0; j < 16; j++) {
      int a = (int)((x[j] - min) * id + 0.5f), c = (int)((x[j + 16] - min) * id + 0.5f);
      a = a < 15 ? a : 15;
      c = c < 15 ? c : 15;
      b[4 + j] = (uint8_t)(a | (c << 4));
    }
    return;
  }
  case EL_Q5_0: {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
      if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    float d = max / -16, id = d ? 1.0f / d : 0.0f;
    f2h(b, d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
      int a = (int)(x[j] * id + 16.5f), c = (int)(x[j + 16] * id + 16.5f);
      a = a < 31 ? a : 31;
      c = c < 31 ? c : 31;
      b[6 + j] = (uint8_t)((a & 0x0F) | ((c & 0x0F) << 4));
      qh |= (uint32_t)((a & 0x10) >> 4) << j;
      qh |= (uint32_t)((c & 0x10) >> 4) << (j + 16);
    }
    memcpy(b + 2, &qh, 4);
    return;
  }
  case EL_Q5_1: {
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < 32; j++) { min = fminf(min, x[j]); max = fmaxf(max, x[j]); }
    float d = (max - min) / 31, id = d ? 1.0f / d : 0.0f;
    f2h(b, d);
    f2h(b + 2, min);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
      int a = (int)((x[j] - min) * id + 0.5f), c = (int)((x[j + 16] - min) * id + 0.5f);
      a = a < 31 ? a : 31;
      c = c < 31 ? c : 31;
      b[8 + j] = (uint8_t)((a & 0x0F) | ((c & 0x0F) << 4));
      qh |= (uint32_t)((a & 0x10) >> 4) << j;
      qh |= (uint32_t)((c & 0x10) >> 4) << (j + 16);
    }
    memcpy(b + 4, &qh, 4);
    return;
  }
  case EL_Q4_K: case EL_Q5_K: {
    // Q5_K as Q4_K with 32 levels and the fifth bits in qh.
    const int levels = t == EL_Q5_K ? 31 : 15;
    float scales[8], mins[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
      float lo = 0, hi = -INFINITY;  // the format's mins are offsets ≤ 0
      for (int l = 0; l < 32; l++) { lo = fminf(lo, x[32 * j + l]); hi = fmaxf(hi, x[32 * j + l]); }
      scales[j] = (hi - lo) / levels;
      mins[j] = -lo;
      max_scale = fmaxf(max_scale, scales[j]);
      max_min = fmaxf(max_min, mins[j]);
    }
    float inv_scale = max_scale > 0 ? 63 / max_scale : 0, inv_min = max_min > 0 ? 63 / max_min : 0;
    uint8_t *sc = b + 4, *qs = b + (t == EL_Q5_K ? 48 : 16);
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
      int ls = nearest_int(inv_scale * scales[j]), lm = nearest_int(inv_min * mins[j]);
      ls = ls < 63 ? ls : 63;
      lm = lm < 63 ? lm : 63;
      if (j < 4) {
        sc[j] = (uint8_t)ls;
        sc[j + 4] = (uint8_t)lm;
      } else {
        sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
        sc[j - 0] |= (uint8_t)((lm >> 4) << 6);
      }
    }
    float d = max_scale / 63, dmin = max_min / 63;
    f2h(b, d);
    f2h(b + 2, dmin);
    d = el_half_at(b);
    dmin = el_half_at(b + 2);
    uint8_t L[256];
    for (int j = 0; j < 8; j++) {
      int s, m;
      el_k_scale_min(j, sc, &s, &m);
      float dd = d * s, dm = dmin * m;
      for (int l = 0; l < 32; l++) {
        int v = dd ? nearest_int((x[32 * j + l] + dm) / dd) : 0;
        L[32 * j + l] = (uint8_t)(v < 0 ? 0 : (v > levels ? levels : v));
      }
    }
    for (int j = 0; j < 256; j += 64)
      for (int l = 0; l < 32; l++) qs[j / 2 + l] = (uint8_t)((L[j + l] & 0xF) | ((L[j + l + 32] & 0xF) << 4));
    if (t == EL_Q5_K) {
      uint8_t *qh = b + 16;
      memset(qh, 0, 32);
      for (int j = 0; j < 4; j++)
        for (int l = 0; l < 32; l++)
          qh[l] |= (uint8_t)(((L[64 * j + l] >> 4) << (2 * j)) | ((L[64 * j + 32 + l] >> 4) << (2 * j + 1)));
    }
    return;
  }
  case EL_Q6_K: {
    float s[16], amax_s = 0;
    for (int j = 0; j < 16; j++) {
      float amax = 0;
      for (int l = 0; l < 16; l++) amax = fmaxf(amax, fabsf(x[16 * j + l]));
      s[j] = amax / 31;
      amax_s = fmaxf(amax_s, s[j]);
    }
    float d = amax_s / 127;
    f2h(b + 208, d);
    d = el_half_at(b + 208);
    int8_t *sc = (int8_t *)(b + 192);
    uint8_t L[256];
    for (int j = 0; j < 16; j++) {
      int v = d ? nearest_int(s[j] / d) : 0;
      sc[j] = (int8_t)(v > 127 ? 127 : v);
      float e = d * sc[j];
      for (int l = 0; l < 16; l++) {
        int q = e ? nearest_int(x[16 * j + l] / e) : 0;
        q = q < -32 ? -32 : (q > 31 ? 31 : q);
        L[16 * j + l] = (uint8_t)(q + 32);
      }
    }
    uint8_t *ql = b, *qh = b + 128;
    for (int n = 0; n < 256; n += 128) {
      for (int l = 0; l < 32; l++) {
        uint8_t q1 = L[n + l], q2 = L[n + l + 32], q3 = L[n + l + 64], q4 = L[n + l + 96];
        ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
      ql += 64;
      qh += 32;
    }
    return;
  }
  default: return;
  }
}

void el_quantize(const float *src, el_dtype t, void *dst, size_t n) {
  size_t qk = el_block_values(t), bs = el_block_bytes(t);
  for (size_t i = 0; i < n / qk; i++) quant_block(src + i * qk, t, (uint8_t *)dst + i * bs);
}

// ---------------------------------------------------------------------------------------------------------
// Portable matrix-vector product: dequantize a block, then 8 partial sums per input in a fixed tree.

static void quant_matvec_portable(const void *w, el_dtype t, size_t cols, const float *x, size_t xs, size_t batch,
                                  float *y, size_t ys, size_t r0, size_t r1) {
  size_t qk = el_block_values(t), bs = el_block_bytes(t), nb = cols / qk;
  float buf[256];
  for (size_t r = r0; r < r1; r++) {
    const uint8_t *row = (const uint8_t *)w + r * nb * bs;
    for (size_t b = 0; b < batch; b++) {
      const float *xb = x + b * xs;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (size_t i = 0; i < nb; i++) {
        dequant_block(row + i * bs, t, buf);
        for (size_t c = 0; c < qk; c += 8)
          for (int k = 0; k < 8; k++) acc[k] += buf[c + k] * xb[i * qk + c + k];
      }
      y[b * ys + r] = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    }
  }
}

#ifdef EL_X86
// ---------------------------------------------------------------------------------------------------------
// AVX-512: a block's integers become float32 lanes; per input, Σ q·x over the block is scaled by the block's
// scale into one of two accumulators (even and odd blocks, so consecutive blocks do not wait on each other).
// One function per type and group size (1–4 inputs) keeps everything in registers.

#define EL_T __attribute__((target("avx512f,avx512bw,avx512vl,f16c")))

// Reads 4 bytes (every block holds more after its scale) into a fresh register (movd): a 2-byte insert into a live
// register would make each block wait for that register's last writer, the previous block's accumulator.
EL_T static inline float h2f_x86(const uint8_t *p) {
  uint32_t h;
  memcpy(&h, p, 4);
  __m128i v;
  __asm__("vmovd %1, %0" : "=x"(v) : "r"(h));  // written as asm: compilers turn a movd into an insert
  return _mm_cvtss_f32(_mm_cvtph_ps(v));
}
// The last two bytes of a block (Q6_K's scale): nothing may be read after them.
EL_T static inline float h2f_x86_last(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// A block of 32 values whose weight is scale × integer: its integers as two 16-lane float registers.
// Q8_0: 32 signed bytes.
EL_T static inline void ints_q8_0(const uint8_t *b, __m512 *w0, __m512 *w1) {
  *w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2))));
  *w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18))));
}
// Q4_0: 16 bytes, low nibbles values 0–15, high nibbles 16–31, offset by 8.
EL_T static inline void ints_q4_0(const uint8_t *b, __m512 *w0, __m512 *w1) {
  const __m512i low = _mm512_set1_epi32(0x0F), eight = _mm512_set1_epi32(8);
  __m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
  *w0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(e, low), eight));
  *w1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(e, 4), eight));
}

// Q8_0 and Q4_0: Σ integer·x over the block, scaled by the block's scale.
#define EL_SCALED_GROUP(DT, BYTES, NB)                                                                           \
  EL_T static void mv_##DT##_##NB(const void *w, size_t cols, const float *x, size_t xs, float *y, size_t ys,   \
                                  size_t r0, size_t r1) {                                                       \
    size_t nb = cols / 32;                                                                                      \
    for (size_t r = r0; r < r1; r++) {                                                                          \
      const uint8_t *row = (const uint8_t *)w + r * nb * BYTES;                                                 \
      __m512 acc[2][NB];                                                                                        \
      for (int k = 0; k < NB; k++) acc[0][k] = acc[1][k] = _mm512_setzero_ps();                                 \
      for (size_t i = 0; i < nb; i++) {                                                                         \
        const uint8_t *b = row + i * BYTES;                                                                     \
        _mm_prefetch((const char *)b + 1024, _MM_HINT_T0);                                                      \
        __m512 d = _mm512_set1_ps(h2f_x86(b)), w0, w1;                                                          \
        ints_##DT(b, &w0, &w1);                                                                                 \
        for (int k = 0; k < NB; k++) {                                                                          \
          const float *xb = x + k * xs + i * 32;                                                                \
          __m512 s = _mm512_mul_ps(w0, _mm512_loadu_ps(xb));                                                    \
          s = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), s);                                                 \
          acc[i & 1][k] = _mm512_fmadd_ps(d, s, acc[i & 1][k]);                                                 \
        }                                                                                                       \
      }                                                                                                         \
      for (int k = 0; k < NB; k++) y[k * ys + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][k], acc[1][k]));   \
    }                                                                                                           \
  }
#define EL_Q8_0_GROUP(NB) EL_SCALED_GROUP(q8_0, 34, NB)
#define EL_Q4_0_GROUP(NB) EL_SCALED_GROUP(q4_0, 18, NB)

// Q4_1: as Q4_0 without the offset, plus m·Σx over the block.
#define EL_Q4_1_GROUP(NB)                                                                                        \
  EL_T static void mv_q4_1_##NB(const void *w, size_t cols, const float *x, size_t xs, float *y, size_t ys,     \
                                size_t r0, size_t r1) {                                                         \
    size_t nb = cols / 32;                                                                                      \
    const __m512i low = _mm512_set1_epi32(0x0F);                                                                \
    for (size_t r = r0; r < r1; r++) {                                                                          \
      const uint8_t *row = (const uint8_t *)w + r * nb * 20;                                                    \
      __m512 acc[2][NB], accm[NB];                                                                              \
      for (int k = 0; k < NB; k++) acc[0][k] = acc[1][k] = accm[k] = _mm512_setzero_ps();                       \
      for (size_t i = 0; i < nb; i++) {                                                                         \
        const uint8_t *b = row + i * 20;                                                                        \
        _mm_prefetch((const char *)b + 1024, _MM_HINT_T0);                                                      \
        __m512 d = _mm512_set1_ps(h2f_x86(b)), m = _mm512_set1_ps(h2f_x86(b + 2));                              \
        __m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 4)));                            \
        __m512 w0 = _mm512_cvtepi32_ps(_mm512_and_si512(e, low));                                               \
        __m512 w1 = _mm512_cvtepi32_ps(_mm512_srli_epi32(e, 4));                                                \
        for (int k = 0; k < NB; k++) {                                                                          \
          const float *xb = x + k * xs + i * 32;                                                                \
          __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);                                       \
          __m512 s = _mm512_fmadd_ps(w1, x1, _mm512_mul_ps(w0, x0));                                            \
          acc[i & 1][k] = _mm512_fmadd_ps(d, s, acc[i & 1][k]);                                                 \
          accm[k] = _mm512_fmadd_ps(m, _mm512_add_ps(x0, x1), accm[k]);                                         \
        }                                                                                                       \
      }                                                                                                         \
      for (int k = 0; k < NB; k++)                                                                              \
        y[k * ys + r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0][k], acc[1][k]), accm[k]));      \
    }                                                                                                           \
  }

// Q4_K: per 64 values, 32 bytes whose low nibbles are values 0–31 and high nibbles 32–63, each half with its own
// 6-bit scale and min.
#define EL_Q4_K_GROUP(NB)                                                                                        \
  EL_T static void mv_q4_k_##NB(const void *w, size_t cols, const float *x, size_t xs, float *y, size_t ys,     \
                                size_t r0, size_t r1) {                                                         \
    size_t nb = cols / 256;                                                                                     \
    const __m512i low = _mm512_set1_epi32(0x0F);                                                                \
    for (size_t r = r0; r < r1; r++) {                                                                          \
      const uint8_t *row = (const uint8_t *)w + r * nb * 144;                                                   \
      __m512 acc[2][NB], accm[NB];                                                                              \
      for (int k = 0; k < NB; k++) acc[0][k] = acc[1][k] = accm[k] = _mm512_setzero_ps();                       \
      for (size_t i = 0; i < nb; i++) {                                                                         \
        const uint8_t *b = row + i * 144, *sc = b + 4, *q = b + 16;                                             \
        _mm_prefetch((const char *)b + 1024, _MM_HINT_T0);                                                      \
        _mm_prefetch((const char *)b + 1088, _MM_HINT_T0);                                                      \
        _mm_prefetch((const char *)b + 1152, _MM_HINT_T0);                                                      \
        float d = h2f_x86(b), dmin = h2f_x86(b + 2);                                                            \
        for (int j = 0; j < 4; j++) {                                                                           \
          int s1, m1, s2, m2;                                                                                   \
          el_k_scale_min(2 * j, sc, &s1, &m1);                                                                   \
          el_k_scale_min(2 * j + 1, sc, &s2, &m2);                                                               \
          __m512 d1 = _mm512_set1_ps(d * s1), d2 = _mm512_set1_ps(d * s2);                                      \
          __m512 n1 = _mm512_set1_ps(dmin * m1), n2 = _mm512_set1_ps(dmin * m2);                                \
          __m512i ea = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + 32 * j)));                    \
          __m512i eb = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + 32 * j + 16)));               \
          __m512 la = _mm512_cvtepi32_ps(_mm512_and_si512(ea, low));                                            \
          __m512 lb = _mm512_cvtepi32_ps(_mm512_and_si512(eb, low));                                            \
          __m512 ha = _mm512_cvtepi32_ps(_mm512_srli_epi32(ea, 4));                                             \
          __m512 hb = _mm512_cvtepi32_ps(_mm512_srli_epi32(eb, 4));                                             \
          for (int k = 0; k < NB; k++) {                                                                        \
            const float *xb = x + k * xs + i * 256 + 64 * j;                                                    \
            __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);                                     \
            __m512 x2 = _mm512_loadu_ps(xb + 32), x3 = _mm512_loadu_ps(xb + 48);                                \
            __m512 s1v = _mm512_fmadd_ps(lb, x1, _mm512_mul_ps(la, x0));                                        \
            __m512 s2v = _mm512_fmadd_ps(hb, x3, _mm512_mul_ps(ha, x2));                                        \
            acc[0][k] = _mm512_fmadd_ps(d1, s1v, acc[0][k]);                                                    \
            acc[1][k] = _mm512_fmadd_ps(d2, s2v, acc[1][k]);                                                    \
            accm[k] = _mm512_fmadd_ps(n1, _mm512_add_ps(x0, x1), accm[k]);                                      \
            accm[k] = _mm512_fmadd_ps(n2, _mm512_add_ps(x2, x3), accm[k]);                                      \
          }                                                                                                     \
        }                                                                                                       \
      }                                                                                                         \
      for (int k = 0; k < NB; k++)                                                                              \
        y[k * ys + r] = _mm512_reduce_add_ps(_mm512_sub_ps(_mm512_add_ps(acc[0][k], acc[1][k]), accm[k]));      \
    }                                                                                                           \
  }

// Q6_K: per 128 values, 64 bytes of low 4 bits and 32 of high 2 bits; sixteen-value groups with int8 scales.
#define EL_Q6_K_GROUP(NB)                                                                                        \
  EL_T static void mv_q6_k_##NB(const void *w, size_t cols, const float *x, size_t xs, float *y, size_t ys,     \
                                size_t r0, size_t r1) {                                                         \
    size_t nb = cols / 256;                                                                                     \
    const __m512i low = _mm512_set1_epi32(0x0F), three = _mm512_set1_epi32(3), off = _mm512_set1_epi32(32);     \
    for (size_t r = r0; r < r1; r++) {                                                                          \
      const uint8_t *row = (const uint8_t *)w + r * nb * 210;                                                   \
      __m512 acc[2][NB];                                                                                        \
      for (int k = 0; k < NB; k++) acc[0][k] = acc[1][k] = _mm512_setzero_ps();                                 \
      for (size_t i = 0; i < nb; i++) {                                                                         \
        const uint8_t *b = row + i * 210, *ql = b, *qh = b + 128;                                               \
        const int8_t *sc = (const int8_t *)(b + 192);                                                           \
        _mm_prefetch((const char *)b + 1024, _MM_HINT_T0);                                                      \
        _mm_prefetch((const char *)b + 1088, _MM_HINT_T0);                                                      \
        _mm_prefetch((const char *)b + 1152, _MM_HINT_T0);                                                      \
        _mm_prefetch((const char *)b + 1216, _MM_HINT_T0);                                                      \
        float d = h2f_x86_last(b + 208);                                                                             \
        for (int n = 0; n < 2; n++) {                                                                           \
          for (int l0 = 0; l0 < 32; l0 += 16) {                                                                 \
            int is = 8 * n + l0 / 16;                                                                           \
            __m512i A = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + 64 * n + l0)));             \
            __m512i B = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ql + 64 * n + 32 + l0)));        \
            __m512i H = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(qh + 32 * n + l0)));             \
            __m512 q1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(                                                    \
              _mm512_or_si512(_mm512_and_si512(A, low), _mm512_slli_epi32(_mm512_and_si512(H, three), 4)), off)); \
            __m512 q2 = _mm512_cvtepi32_ps(_mm512_sub_epi32(                                                    \
              _mm512_or_si512(_mm512_and_si512(B, low),                                                         \
                              _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(H, 2), three), 4)), off));   \
            __m512 q3 = _mm512_cvtepi32_ps(_mm512_sub_epi32(                                                    \
              _mm512_or_si512(_mm512_srli_epi32(A, 4),                                                          \
                              _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(H, 4), three), 4)), off));   \
            __m512 q4 = _mm512_cvtepi32_ps(_mm512_sub_epi32(                                                    \
              _mm512_or_si512(_mm512_srli_epi32(B, 4), _mm512_slli_epi32(_mm512_srli_epi32(H, 6), 4)), off));   \
            __m512 s1 = _mm512_set1_ps(d * sc[is + 0]), s2 = _mm512_set1_ps(d * sc[is + 2]);                    \
            __m512 s3 = _mm512_set1_ps(d * sc[is + 4]), s4 = _mm512_set1_ps(d * sc[is + 6]);                    \
            for (int k = 0; k < NB; k++) {                                                                      \
              const float *xb = x + k * xs + i * 256 + 128 * n + l0;                                            \
              acc[0][k] = _mm512_fmadd_ps(s1, _mm512_mul_ps(q1, _mm512_loadu_ps(xb)), acc[0][k]);               \
              acc[1][k] = _mm512_fmadd_ps(s2, _mm512_mul_ps(q2, _mm512_loadu_ps(xb + 32)), acc[1][k]);          \
              acc[0][k] = _mm512_fmadd_ps(s3, _mm512_mul_ps(q3, _mm512_loadu_ps(xb + 64)), acc[0][k]);          \
              acc[1][k] = _mm512_fmadd_ps(s4, _mm512_mul_ps(q4, _mm512_loadu_ps(xb + 96)), acc[1][k]);          \
            }                                                                                                   \
          }                                                                                                     \
        }                                                                                                       \
      }                                                                                                         \
      for (int k = 0; k < NB; k++) y[k * ys + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][k], acc[1][k]));   \
    }                                                                                                           \
  }

#define EL_QUANT_TYPE(G) G(1) G(2) G(3) G(4)
EL_QUANT_TYPE(EL_Q8_0_GROUP)
EL_QUANT_TYPE(EL_Q4_0_GROUP)
EL_QUANT_TYPE(EL_Q4_1_GROUP)
EL_QUANT_TYPE(EL_Q4_K_GROUP)
EL_QUANT_TYPE(EL_Q6_K_GROUP)


static void quant_matvec_avx512(const void *w, el_dtype t, size_t cols, const float *x, size_t xs, size_t batch,
                                float *y, size_t ys, size_t r0, size_t r1) {
  static const el_group_fn q8_0[4] = {mv_q8_0_1, mv_q8_0_2, mv_q8_0_3, mv_q8_0_4};
  static const el_group_fn q4_0[4] = {mv_q4_0_1, mv_q4_0_2, mv_q4_0_3, mv_q4_0_4};
  static const el_group_fn q4_1[4] = {mv_q4_1_1, mv_q4_1_2, mv_q4_1_3, mv_q4_1_4};
  static const el_group_fn q4_k[4] = {mv_q4_k_1, mv_q4_k_2, mv_q4_k_3, mv_q4_k_4};
  static const el_group_fn q6_k[4] = {mv_q6_k_1, mv_q6_k_2, mv_q6_k_3, mv_q6_k_4};
  const el_group_fn *fns;
  switch (t) {
  case EL_Q8_0: fns = q8_0; break;
  case EL_Q4_0: fns = q4_0; break;
  case EL_Q4_1: fns = q4_1; break;
  case EL_Q4_K: fns = q4_k; break;
  default: fns = q6_k; break;
  }
  el_run_groups(fns, w, cols, x, xs, batch, y, ys, r0, r1);
}
#endif

void el_quant_matvec(const void *w, el_dtype t, size_t cols, const float *x, size_t xs, size_t batch, float *y,
                     size_t ys, size_t r0, size_t r1) {
#ifdef EL_X86
  // The 5-bit types compute with exact arithmetic on the portable path only: files that hold them are run with
  // llama.cpp's arithmetic, whose kernels are vectorised.
  if (el_internal_avx512() && t != EL_Q5_0 && t != EL_Q5_1 && t != EL_Q5_K) {
    quant_matvec_avx512(w, t, cols, x, xs, batch, y, ys, r0, r1);
    return;
  }
#endif
  quant_matvec_portable(w, t, cols, x, xs, batch, y, ys, r0, r1);
}

// ---------------------------------------------------------------------------------------------------------
// llama.cpp's arithmetic: activations quantized to 8 bits per block of 32 (Q8_0, and Q8_1 with the block's
// sum for Q4_1 weights), products of integers summed exactly, one float multiply-add per block.

size_t el_act_block_bytes(void) { return sizeof(el_act_block); }

int el_act_supported(el_dtype t) {
  return t == EL_Q8_0 || t == EL_Q4_0 || t == EL_Q4_1 || t == EL_Q4_0X8 || t == EL_Q5_0 || t == EL_Q5_1;
}

void el_repack_q4_0x8(const void *src, void *dst, size_t rows, size_t cols) {
  size_t nb = cols / 32;
  const uint8_t *s = src;
  uint8_t *d = dst;
  for (size_t g = 0; g < rows / 8; g++)
    for (size_t i = 0; i < nb; i++) {
      uint8_t *out = d + (g * nb + i) * 144;
      for (int j = 0; j < 8; j++) {
        const uint8_t *b = s + ((g * 8 + (size_t)j) * nb + i) * 18;
        memcpy(out + 2 * j, b, 2);
        el_interleave4(out + 16, b + 2, (size_t)j, 4);
      }
    }
}

// As ggml's x86 quantize_row_q8_0/q8_1: d = amax / 127 (kept as float16), q = round-half-even(x · 127 / amax), and
// for Q8_1 s = float16(d · Σq) with the unrounded d.
void el_quantize_act(const float *x, size_t n, el_act_block *out) {
  for (size_t i = 0; i < n / 32; i++) {
    const float *v = x + 32 * i;
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(v[j]));
    float d = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
    el_act_block *b = out + i;
    b->d = el_f16_to_f32(el_f32_to_f16(d));
    int32_t sum = 0;
    for (int j = 0; j < 32; j++) {
      // The default rounding mode: half to even, as _mm256_round_ps. Non-finite inputs (a broken model) give 0.
      float scaled = v[j] * id;
      int q = scaled == scaled ? (int)nearbyintf(fminf(fmaxf(scaled, -127.0f), 127.0f)) : 0;
      b->q[j] = (int8_t)q;
      sum += q;
    }
    b->sum = sum;
    b->s = el_f16_to_f32(el_f32_to_f16(d * (float)sum));
  }
}

// The portable product: the same integer lanes and the same float operations as the vector kernels below.
// Q4_0 (which llama.cpp repacks into groups of 8 rows on x86 and multiplies with ggml_gemv/gemm_q4_0_8x8_q8_0) sums
// as those kernels do: per block the integer Σ (q − 8)·a, fused once with d_w·d_a into one float per row.
static float act_dot_portable(const uint8_t *w, el_dtype t, size_t nb, size_t r, const el_act_block *a) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, extra = 0, total = 0;
  for (size_t i = 0; i < nb; i++) {
    const el_act_block *y = a + i;
    uint8_t tmp[16];
    const uint8_t *qs, *b = el_act_weights(w, t, nb, r, i, &qs, tmp);
    int q[32];
    if (t == EL_Q8_0) {
      for (int j = 0; j < 32; j++) q[j] = ((const int8_t *)qs)[j];
    } else {
      for (int j = 0; j < 16; j++) { q[j] = qs[j] & 0xF; q[j + 16] = qs[j] >> 4; }
      if (t == EL_Q5_0 || t == EL_Q5_1) {
        uint32_t qh;
        memcpy(&qh, qs - 4, 4);
        for (int j = 0; j < 32; j++) q[j] |= (int)((qh >> j) & 1) << 4;
        if (t == EL_Q5_0)
          for (int j = 0; j < 32; j++) q[j] -= 16;
      }
    }
    const float dd = el_half_at(b) * y->d;
    if (t == EL_Q4_0 || t == EL_Q4_0X8) {
      int32_t isum = -8 * y->sum;
      for (int j = 0; j < 32; j++) isum += q[j] * y->q[j];
      total = fmaf((float)isum, dd, total);
      continue;
    }
    for (int k = 0; k < 8; k++) {
      int32_t lane = 0;
      for (int u = 0; u < 4; u++) lane += q[4 * k + u] * y->q[4 * k + u];
      acc[k] = fmaf(dd, (float)lane, acc[k]);
    }
    if (t == EL_Q4_1 || t == EL_Q5_1) extra = fmaf(el_half_at(b + 2), y->s, extra);
  }
  if (t == EL_Q4_0 || t == EL_Q4_0X8) return total;
  return el_hsum8(acc) + extra;
}

#ifdef EL_X86
#define EL_AVX2 __attribute__((target("avx2,fma,f16c")))
#define EL_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

// h2f_x86 for the AVX2 kernels and the AVX-512 ones alike (a VEX-encoded movd): 4 bytes read into a fresh
// register, so every block's scale must have two more bytes after it.
EL_AVX2 static inline float h2f_f16c(const uint8_t *p) {
  uint32_t h;
  memcpy(&h, p, 4);
  __m128i v;
  __asm__("vmovd %1, %0" : "=x"(v) : "r"(h));
  return _mm_cvtss_f32(_mm_cvtph_ps(v));
}

// 32 nibbles of 16 bytes as 32 unsigned bytes in value order (low nibbles 0–15, high nibbles 16–31).
EL_AVX2 static inline __m256i nibbles32(const uint8_t *p) {
  __m128i v = _mm_loadu_si128((const __m128i *)p), m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

// Byte j is 0xFF where bit j of the 32-bit word at p is set, 0 elsewhere (the fifth bits of Q5_0 and Q5_1).
EL_AVX2 static inline __m256i bits32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), spread);
  b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

// Four-byte sums of unsigned × signed bytes into eight 32-bit lanes: one instruction with AVX-512 VNNI, two with
// AVX2 (pairs into 16 bits, which cannot saturate for these operands: |u| ≤ 128 and |s| ≤ 127 gives at most 32512).
#define EL_DOT_VNNI(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))
#define EL_DOT_AVX2(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))

// Per input, the integer lanes of each block made float and scaled by d_w·d_x into eight float sums, in the order
// of ggml's vec_dot (one accumulator per row, blocks in order); the Q4_1/Q5_1 minimum comes in through each block's
// Σq of the input. Q4_0: one integer per block (its offset of 8 through Σq), one float sum (see act_dot_portable). Rows go one at a time, each a single stream through memory: four rows
// interleaved (four streams) measured half as fast on this project's 2-core VM (10–12 against 24 tokens/s on
// Llama-3.2-1B Q4_0). One function per weight type and instruction set, so that the loop holds no branch.
#define EL_ACT_KERNEL(NAME, ATTR, DOT, T)                                                                       \
  ATTR static void NAME(const void *w, size_t cols, const el_act_block *a, float *y, size_t r) {               \
    const size_t nb = cols / 32;                                                                                 \
    __m256 acc = _mm256_setzero_ps();                                                                            \
    float extra = 0;                                                                                             \
    for (size_t ib = 0; ib < nb; ib++) {                                                                         \
      const el_act_block *yb = a + ib;                                                                           \
      const __m256i qy = _mm256_loadu_si256((const __m256i *)yb->q);                                             \
      uint8_t tmp[16];                                                                                           \
      const uint8_t *qs, *b = el_act_weights(w, T, nb, r, ib, &qs, tmp);                                         \
      const float dd = h2f_f16c(b) * yb->d;                                                                      \
      __m256i dot;                                                                                               \
      if (T == EL_Q8_0) {                                                                                        \
        __m256i qx = _mm256_loadu_si256((const __m256i *)qs);                                                    \
        dot = DOT(_mm256_abs_epi8(qx), _mm256_sign_epi8(qy, qx));                                                \
      } else if (T == EL_Q5_0) {                                                                                 \
        __m256i qx = _mm256_or_si256(nibbles32(qs), _mm256_andnot_si256(bits32(qs - 4), _mm256_set1_epi8((char)0xF0))); \
        dot = DOT(_mm256_abs_epi8(qx), _mm256_sign_epi8(qy, qx));                                                \
      } else if (T == EL_Q5_1) {                                                                                 \
        __m256i qx = _mm256_or_si256(nibbles32(qs), _mm256_and_si256(bits32(qs - 4), _mm256_set1_epi8(0x10)));   \
        dot = DOT(qx, qy);                                                                                       \
      } else {                                                                                                   \
        dot = DOT(nibbles32(qs), qy);                                                                            \
      }                                                                                                          \
      if (T == EL_Q4_0 || T == EL_Q4_0X8) {                                                                      \
        extra = fmaf((float)(el_hsum_i32_avx2(dot) - 8 * yb->sum), dd, extra);                                           \
        continue;                                                                                                \
      }                                                                                                          \
      if (T == EL_Q4_1 || T == EL_Q5_1) extra = fmaf(h2f_f16c(b + 2), yb->s, extra);                             \
      acc = _mm256_fmadd_ps(_mm256_set1_ps(dd), _mm256_cvtepi32_ps(dot), acc);                                   \
    }                                                                                                            \
    y[r] = (T == EL_Q4_0 || T == EL_Q4_0X8) ? extra : el_hsum8_avx2(acc) + extra;                                        \
  }
#define EL_ACT_TYPES(ISA, ATTR, DOT)                                                                            \
  EL_ACT_KERNEL(act_q8_0_##ISA, ATTR, DOT, EL_Q8_0)                                                              \
  EL_ACT_KERNEL(act_q4_0_##ISA, ATTR, DOT, EL_Q4_0)                                                              \
  EL_ACT_KERNEL(act_q4_1_##ISA, ATTR, DOT, EL_Q4_1)                                                              \
  EL_ACT_KERNEL(act_q5_0_##ISA, ATTR, DOT, EL_Q5_0)                                                              \
  EL_ACT_KERNEL(act_q5_1_##ISA, ATTR, DOT, EL_Q5_1)
EL_ACT_TYPES(vnni, EL_VNNI, EL_DOT_VNNI)
EL_ACT_TYPES(avx2, EL_AVX2, EL_DOT_AVX2)

// Eight rows of a repacked Q4_0 matrix times up to four inputs (NT), as ggml's gemv/gemm for repacked Q4_0 work:
// per step k one input group of four bytes broadcast to every lane times four bytes of each of the eight rows
// (one 32-byte load of the repacked block holds them for values 4k… in its low nibbles and 16+4k… in its high
// ones), so that lane j sums row j's block product; each weight is loaded and unpacked once for all the inputs.
// Per row and input, the block's integer (its offset of 8 through Σq) fused with d_w·d_x into one float: the
// arithmetic of act_dot_portable, so the same bits for every grouping of rows and inputs. A prompt's tokens go
// four at a time. AVX2 sums the 16-bit products of the eight steps before widening them (at most 8·2·15·127, no
// overflow); VNNI accumulates in 32 bits. The matrix is one stream: without software prefetching it read 26 GB/s
// against 22 with (a Zen 4, medians of six interleaved passes over 192 MiB).
#define EL_STEP_AVX2(acc, w, a) acc = _mm256_add_epi16(acc, _mm256_maddubs_epi16((w), (a)))
#define EL_WIDEN_AVX2(acc) _mm256_madd_epi16(acc, _mm256_set1_epi16(1))
#define EL_STEP_VNNI(acc, w, a) acc = _mm256_dpbusd_epi32(acc, (w), (a))
#define EL_WIDEN_VNNI(acc) (acc)
#define EL_Q4_0X8_TILE(NAME, ATTR, STEP, WIDEN, NT)                                                              \
  ATTR static void NAME(const void *w, size_t cols, const el_act_block *x, size_t xs, float *y, size_t ys,      \
                        size_t r) {                                                                             \
    const size_t nb = cols / 32;                                                                                \
    const uint8_t *g = (const uint8_t *)w + (r / 8) * nb * 144;                                                 \
    const __m256i m4 = _mm256_set1_epi8(0x0F);                                                                  \
    __m256 acc[NT];                                                                                             \
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();                                                  \
    for (size_t ib = 0; ib < nb; ib++) {                                                                        \
      const uint8_t *b = g + ib * 144;                                                                          \
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)b));                                   \
      __m256i lo[4], hi[4];                                                                                     \
      for (int k = 0; k < 4; k++) {                                                                             \
        const __m256i v = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * k));                               \
        lo[k] = _mm256_and_si256(v, m4);                                                                        \
        hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);                                                  \
      }                                                                                                         \
      for (int t = 0; t < NT; t++) {                                                                            \
        const el_act_block *yb = x + t * xs + ib;                                                               \
        const __m256i a0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)yb->q));                \
        const __m256i a1 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(yb->q + 16)));         \
        __m256i p = _mm256_setzero_si256();                                                                     \
        STEP(p, lo[0], _mm256_shuffle_epi32(a0, 0x00));                                                         \
        STEP(p, lo[1], _mm256_shuffle_epi32(a0, 0x55));                                                         \
        STEP(p, lo[2], _mm256_shuffle_epi32(a0, 0xAA));                                                         \
        STEP(p, lo[3], _mm256_shuffle_epi32(a0, 0xFF));                                                         \
        STEP(p, hi[0], _mm256_shuffle_epi32(a1, 0x00));                                                         \
        STEP(p, hi[1], _mm256_shuffle_epi32(a1, 0x55));                                                         \
        STEP(p, hi[2], _mm256_shuffle_epi32(a1, 0xAA));                                                         \
        STEP(p, hi[3], _mm256_shuffle_epi32(a1, 0xFF));                                                         \
        const __m256i isum = _mm256_sub_epi32(WIDEN(p), _mm256_set1_epi32(8 * yb->sum));                        \
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(yb->d)), acc[t]);   \
      }                                                                                                         \
    }                                                                                                           \
    for (int t = 0; t < NT; t++) _mm256_storeu_ps(y + t * ys + r, acc[t]);                                      \
  }
EL_Q4_0X8_TILE(q4_0x8_tile4_vnni, EL_VNNI, EL_STEP_VNNI, EL_WIDEN_VNNI, 4)
EL_Q4_0X8_TILE(q4_0x8_tile1_vnni, EL_VNNI, EL_STEP_VNNI, EL_WIDEN_VNNI, 1)
EL_Q4_0X8_TILE(q4_0x8_tile4_avx2, EL_AVX2, EL_STEP_AVX2, EL_WIDEN_AVX2, 4)
EL_Q4_0X8_TILE(q4_0x8_tile1_avx2, EL_AVX2, EL_STEP_AVX2, EL_WIDEN_AVX2, 1)

typedef void (*el_tile_fn)(const void *, size_t, const el_act_block *, size_t, float *, size_t, size_t);

// Rows [r0, r1) (whole groups of 8) of a repacked Q4_0 matrix for a batch: four inputs at a time, then one.
static void q4_0x8_rows(el_tile_fn four, el_tile_fn one, const void *w, size_t cols, const el_act_block *x,
                        size_t xs, size_t batch, float *y, size_t ys, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; r += 8) {
    size_t k = 0;
    for (; k + 4 <= batch; k += 4) four(w, cols, x + k * xs, xs, y + k * ys, ys, r);
    for (; k < batch; k++) one(w, cols, x + k * xs, xs, y + k * ys, ys, r);
  }
}

typedef void (*el_act_fn)(const void *, size_t, const el_act_block *, float *, size_t);

// One row's kernel per type: [Q8_0, Q4_0, Q4_1, Q5_0, Q5_1] (a repacked Q4_0 matrix goes to the tile kernels).
static el_act_fn act_pick(const el_act_fn fns[5], el_dtype t) {
  switch (t) {
  case EL_Q8_0: return fns[0];
  case EL_Q4_0: return fns[1];
  case EL_Q4_1: return fns[2];
  case EL_Q5_0: return fns[3];
  default: return fns[4];
  }
}

static void act_rows(el_act_fn one, const void *w, size_t cols, const el_act_block *x, size_t xs, size_t batch,
                     float *y, size_t ys, size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; r++)
    for (size_t k = 0; k < batch; k++) one(w, cols, x + k * xs, y + k * ys, r);
}
#endif

#ifdef EL_X86
static int vnni = -1;
#endif

void el_act_matvec(const void *w, el_dtype t, size_t cols, const el_act_block *x, size_t xs, size_t batch,
                   float *y, size_t ys, size_t r0, size_t r1) {
#ifdef EL_X86
  if (vnni < 0) {
    __builtin_cpu_init();
    vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && el_internal_avx512();
  }
  if (vnni) {
    if (t == EL_Q4_0X8) {
      q4_0x8_rows(q4_0x8_tile4_vnni, q4_0x8_tile1_vnni, w, cols, x, xs, batch, y, ys, r0, r1);
      return;
    }
    static const el_act_fn fns[5] = {act_q8_0_vnni, act_q4_0_vnni, act_q4_1_vnni, act_q5_0_vnni, act_q5_1_vnni};
    act_rows(act_pick(fns, t), w, cols, x, xs, batch, y, ys, r0, r1);
    return;
  }
  if (el_internal_avx2()) {
    if (t == EL_Q4_0X8) {
      q4_0x8_rows(q4_0x8_tile4_avx2, q4_0x8_tile1_avx2, w, cols, x, xs, batch, y, ys, r0, r1);
      return;
    }
    static const el_act_fn fns[5] = {act_q8_0_avx2, act_q4_0_avx2, act_q4_1_avx2, act_q5_0_avx2, act_q5_1_avx2};
    act_rows(act_pick(fns, t), w, cols, x, xs, batch, y, ys, r0, r1);
    return;
  }
#endif
  if (el_internal_neon()) {
    el_neon_act(w, t, cols, x, xs, batch, y, ys, r0, r1);
    return;
  }
  size_t nb = cols / 32;
  for (size_t r = r0; r < r1; r++)
    for (size_t k = 0; k < batch; k++) y[k * ys + r] = act_dot_portable(w, t, nb, r, x + k * xs);
}

// Attention as llama.cpp computes it with a float16 KV cache and flash attention off: the query rounded to float16
// (k and v hold float16 values), softmax of the scaled scores with the sum in double, the weights rounded to
// float16 before they multiply v.
void el_attend_f16(const float *q, const float *k, const float *v, size_t ctx, size_t head_dim, float scale,
                   float *scores, float *out) {
  float mx = -INFINITY;
  for (size_t j = 0; j < ctx; j++) {
    const float *kj = k + j * head_dim;
    float s = 0;
    for (size_t d = 0; d < head_dim; d++) s += el_f16_to_f32(el_f32_to_f16(q[d])) * kj[d];
    s *= scale;
    scores[j] = s;
    if (s > mx) mx = s;
  }
  double sum = 0;
  for (size_t j = 0; j < ctx; j++) {
    scores[j] = expf(scores[j] - mx);
    sum += (double)scores[j];
  }
  float inv = (float)(1.0 / sum);
  for (size_t d = 0; d < head_dim; d++) out[d] = 0;
  for (size_t j = 0; j < ctx; j++) {
    float p = el_f16_to_f32(el_f32_to_f16(scores[j] * inv));
    const float *vj = v + j * head_dim;
    for (size_t d = 0; d < head_dim; d++) out[d] += p * vj[d];
  }
}

// The portable ggml functions below are also compiled for x86 CPUs with FMA (chosen at load time), where fmaf is
// one instruction instead of a call: fmaf's result is exact either way, so are the bits.
#if defined(EL_X86) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define EL_FMA_CLONES __attribute__((target_clones("fma", "default")))
#endif
#endif
#ifndef EL_FMA_CLONES
#define EL_FMA_CLONES
#endif

// ggml's AVX-512 exponential (ggml_v_expf), one lane at a time: the same constants and fused operations, so the
// same bits as llama.cpp's softmax and SiLU on an AVX-512 machine.
static inline __attribute__((always_inline)) float ggml_expf(float x) {
  const float r = 0x1.8p23f;
  float z = fmaf(x, 0x1.715476p+0f, r), n = z - r;
  float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
  if (fabsf(n) > 192) return n <= 0 ? 0.0f : INFINITY;
  float u = b * b;
  float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                 fmaf(0x1.ffffecp-1f, b, 1.0f));
  // j · 2^n: a multiplication by the power of two where that is a normal float (the same correctly rounded
  // result as ldexpf, without the call), ldexpf beyond.
  const int e = (int)n;
  if (e >= -126 && e <= 127) {
    const uint32_t bits = (uint32_t)(e + 127) << 23;
    float p;
    memcpy(&p, &bits, 4);
    return j * p;
  }
  return ldexpf(j, e);
}

// ggml's AVX2 exponential (ggml_v_expf for __m256), one lane at a time: the same polynomial ending in a product
// (not a fused 1 + …) and the scaling 2^n + j·2^n, fused; beyond |n| > 126 its two-factor scaling.
static inline __attribute__((always_inline)) float ggml_expf8(float x) {
  const float r = 0x1.8p23f;
  float z = fmaf(x, 0x1.715476p+0f, r), n = z - r;
  float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
  uint32_t zb;
  memcpy(&zb, &z, 4);
  const uint32_t e = zb << 23;
  float u = b * b;
  float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                 0x1.ffffecp-1f * b);
  if (!(fabsf(n) > 126)) {
    const uint32_t kb = e + 0x3f800000u;
    float k;
    memcpy(&k, &kb, 4);
    return fmaf(j, k, k);
  }
  const uint32_t g = n <= 0 ? 0x82000000u : 0u, s1b = g + 0x7f000000u, s2b = e - g;
  float s1, s2;
  memcpy(&s1, &s1b, 4);
  memcpy(&s2, &s2b, 4);
  if (fabsf(n) > 192) return s1 * s1;
  return fmaf(s2, j, s2) * s1;
}

// The exponential of the llama.cpp build reproduced: 16 lanes (AVX-512) or 8 (AVX2).
static inline __attribute__((always_inline)) float ggml_exp_w(float x, int w) {
  return w == 16 ? ggml_expf(x) : ggml_expf8(x);
}

// _mm512_reduce_add_ps as GCC expands it: halves, then quarters, then pairs.
static float reduce16(const float *a) {
  float t3[8], t6[4];
  for (int i = 0; i < 8; i++) t3[i] = a[8 + i] + a[i];
  for (int i = 0; i < 4; i++) t6[i] = t3[4 + i] + t3[i];
  float t8a = t6[0] + t6[2], t8b = t6[1] + t6[3];
  return t8a + t8b;
}

// ggml's AVX2 GGML_F32x8_REDUCE after its lanes are combined: halves, then two horizontal adds.
static inline float reduce8_hadd(const float *a) {
  float x[4];
  for (int i = 0; i < 4; i++) x[i] = a[i] + a[4 + i];
  return (x[0] + x[1]) + (x[2] + x[3]);
}

static inline float reduce_w(const float *a, int w) { return w == 16 ? reduce16(a) : el_hsum8(a); }

// Which llama.cpp build the llama.cpp arithmetic reproduces where ggml's code differs by vector width
// (exponential, softmax, SwiGLU, attention products): the CPU's (AVX-512F and DQ: 16 lanes, else 8, as ggml
// compiled for that CPU), or EDGELAB_LLAMACPP_SIMD=avx512bf16|avx512|avx2.
static int ggml_width_chosen = 0, ggml_width_invalid = 0;
static int ggml_width(void) {
  if (ggml_width_chosen) return ggml_width_chosen;
  int w = 8;
#ifdef EL_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) w = 16;
#endif
  const char *want = getenv("EDGELAB_LLAMACPP_SIMD");
  if (want && *want) {
    if (strcmp(want, "avx512") == 0 || strcmp(want, "avx512bf16") == 0) w = 16;
    else if (strcmp(want, "avx2") == 0) w = 8;
    else ggml_width_invalid = 1;
  }
  ggml_width_chosen = w;  // Benign race: every thread computes the same value.
  return w;
}

const char *el_llamacpp_simd(void) { return ggml_width() == 16 ? "avx512" : "avx2"; }

int el_llamacpp_bf16dot(void) {
  if (ggml_width() != 16) return 0;
  const char *want = getenv("EDGELAB_LLAMACPP_SIMD");
  if (want && *want) return strcmp(want, "avx512bf16") == 0;
#ifdef EL_X86
  return __builtin_cpu_supports("avx512bf16");
#else
  return 0;
#endif
}
int el_llamacpp_simd_request_invalid(void) {
  (void)ggml_width();
  return ggml_width_invalid;
}

EL_FMA_CLONES static void swiglu_ggml_portable(float *g, const float *u, size_t n, int w) {
  size_t i = 0, whole = n / (size_t)w * (size_t)w;
  for (; i < whole; i++) g[i] = g[i] / (1.0f + ggml_exp_w(0.0f - g[i], w)) * u[i];
  for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// Attention as llama.cpp computes it on x86 with its float16 KV cache and flash attention off, in the build of
// width w (16: AVX-512, 8: AVX2): the query rounded to float16; each score one w-lane fused multiply-add chain
// reduced as llamafile's tinyBLAS does (a prompt), or ggml_vec_dot_f16 (one token); softmax with ggml's
// exponential and the sum of w-wide partial sums in double; weights rounded to float16 and multiplied into v by
// the same chains. head_dim must be a multiple of 16 (≤ 512).
// ggml_vec_dot_f16: four w-lane accumulators over 4w-value steps, combined (0+2, 1+3, then 0+1) and reduced;
// values past the last whole step summed in double. `x` and `y` hold float16 values; `stride` steps through x.
static inline __attribute__((always_inline)) float vec_dot_f16(size_t n, const float *x, size_t stride, const float *y,
                                                               int w) {
  float sum[4][16] = {{0}};
  const size_t step = 4 * (size_t)w;
  size_t np = n / step * step;
  for (size_t i = 0; i < np; i += step)
    for (int j = 0; j < 4; j++)
      for (int l = 0; l < w; l++) {
        size_t e = i + (size_t)(w * j + l);
        sum[j][l] = fmaf(x[e * stride], y[e], sum[j][l]);
      }
  for (int l = 0; l < w; l++) {
    sum[0][l] += sum[2][l];
    sum[1][l] += sum[3][l];
    sum[0][l] += sum[1][l];
  }
  double s = (double)(w == 16 ? reduce16(sum[0]) : reduce8_hadd(sum[0]));
  for (size_t i = np; i < n; i++) s += (double)(x[i * stride] * y[i]);
  return (float)s;
}

EL_FMA_CLONES static void attend_ggml_portable(const float *q, const float *k, const float *v, size_t ctx,
                                               size_t head_dim, float scale, float *scores, float *out,
                                               int one_column, int w) {
  float q16[512], acc[16];
  const size_t W = (size_t)w;
  size_t hd = head_dim < 512 ? head_dim : 512;
  for (size_t d = 0; d < hd; d++) q16[d] = el_f16_to_f32(el_f32_to_f16(q[d]));
  float mx = -INFINITY;
  for (size_t j = 0; j < ctx; j++) {
    const float *kj = k + j * head_dim;
    float s;
    if (one_column) {
      s = vec_dot_f16(hd, kj, 1, q16, w) * scale;
    } else {
      for (size_t l = 0; l < W; l++) acc[l] = 0;
      for (size_t c = 0; c + W <= hd; c += W)
        for (size_t l = 0; l < W; l++) acc[l] = fmaf(kj[c + l], q16[c + l], acc[l]);
      s = reduce_w(acc, w) * scale;
    }
    scores[j] = s;
    if (s > mx) mx = s;
  }
  double sum = 0;
  for (size_t j0 = 0; j0 < ctx; j0 += W) {
    for (size_t l = 0; l < W; l++) {
      size_t j = j0 + l;
      acc[l] = j < ctx ? ggml_exp_w(scores[j] - mx, w) : 0.0f;
      if (j < ctx) scores[j] = acc[l];
    }
    sum += (double)reduce_w(acc, w);
  }
  float inv = (float)(1.0 / sum);
  for (size_t j = 0; j < ctx; j++) scores[j] = el_f16_to_f32(el_f32_to_f16(scores[j] * inv));
  if (one_column) {
    // The cache is read as llama.cpp's is: whole steps of 4w positions, the positions past ctx holding zeros.
    const size_t step = 4 * W;
    size_t n = (ctx + step - 1) / step * step;
    for (size_t j = ctx; j < n; j++) scores[j] = 0;
    for (size_t d = 0; d < head_dim; d++) {
      float sum4[4][16] = {{0}};
      for (size_t i = 0; i < n; i += step)
        for (size_t jj = 0; jj < 4; jj++)
          for (size_t l = 0; l < W; l++) {
            size_t e = i + W * jj + l;
            float ve = e < ctx ? v[e * head_dim + d] : 0.0f;
            sum4[jj][l] = fmaf(ve, scores[e], sum4[jj][l]);
          }
      for (size_t l = 0; l < W; l++) {
        sum4[0][l] += sum4[2][l];
        sum4[1][l] += sum4[3][l];
        sum4[0][l] += sum4[1][l];
      }
      out[d] = (float)(double)(w == 16 ? reduce16(sum4[0]) : reduce8_hadd(sum4[0]));
    }
    return;
  }
  for (size_t d = 0; d < head_dim; d++) {
    for (size_t l = 0; l < W; l++) acc[l] = 0;
    for (size_t j0 = 0; j0 < ctx; j0 += W)
      for (size_t l = 0; l < W; l++) {
        size_t j = j0 + l;
        if (j < ctx) acc[l] = fmaf(v[j * head_dim + d], scores[j], acc[l]);
      }
    out[d] = reduce_w(acc, w);
  }
}

#ifdef EL_X86
// The same computations with AVX-512 registers: every lane does what the scalar versions above do.

// ggml_v_expf (AVX-512) as ggml writes it.
EL_T static inline __m512 v_expf(__m512 x) {
  const __m512 r = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
  const __m512 n = _mm512_sub_ps(z, r);
  const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
  const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 j = _mm512_fmadd_ps(
    _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                    _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
    u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0F)));
  const __m512 res = _mm512_scalef_ps(j, n);
  if (_mm512_kortestz(d, d)) return res;
  const __m512 zero = _mm512_setzero_ps();
  const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, zero, _CMP_LE_OQ), _mm512_set1_ps(INFINITY), zero);
  return _mm512_mask_blend_ps(d, res, alt);
}

// reduce16 of each of 16 registers' lanes at once: lane d of the result is reduce16 over a[0..15] lane d.
EL_T static inline __m512 reduce16_across(const __m512 *a) {
  __m512 t3[8], t6[4];
  for (int i = 0; i < 8; i++) t3[i] = _mm512_add_ps(a[8 + i], a[i]);
  for (int i = 0; i < 4; i++) t6[i] = _mm512_add_ps(t3[4 + i], t3[i]);
  return _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3]));
}

EL_T static inline float reduce16_reg(__m512 v) {
  float a[16];
  _mm512_storeu_ps(a, v);
  return reduce16(a);
}

EL_T static inline __m512 round_f16(__m512 v) { return _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }

EL_T static void swiglu_ggml_avx512(float *g, const float *u, size_t n) {
  size_t i = 0;
  const __m512 one = _mm512_set1_ps(1), zero = _mm512_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(g + i);
    __m512 silu = _mm512_div_ps(x, _mm512_add_ps(one, v_expf(_mm512_sub_ps(zero, x))));
    _mm512_storeu_ps(g + i, _mm512_mul_ps(silu, _mm512_loadu_ps(u + i)));
  }
  for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

EL_T static void attend_ggml_avx512(const float *q, const float *k, const float *v, size_t ctx, size_t hd, float scale,
                                   float *scores, float *out, int one_column) {
  float q16[512];
  for (size_t c = 0; c < hd; c += 16) _mm512_storeu_ps(q16 + c, round_f16(_mm512_loadu_ps(q + c)));
  float mx = -INFINITY;
  for (size_t j = 0; j < ctx; j++) {
    const float *kj = k + j * hd;
    float s;
    if (one_column) {
      __m512 sum[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      size_t np = hd & ~(size_t)63;
      for (size_t i = 0; i < np; i += 64)
        for (int t = 0; t < 4; t++)
          sum[t] = _mm512_fmadd_ps(_mm512_loadu_ps(kj + i + 16 * t), _mm512_loadu_ps(q16 + i + 16 * t), sum[t]);
      __m512 s0 = _mm512_add_ps(_mm512_add_ps(sum[0], sum[2]), _mm512_add_ps(sum[1], sum[3]));
      double acc = (double)reduce16_reg(s0);
      for (size_t i = np; i < hd; i++) acc += (double)(kj[i] * q16[i]);
      s = (float)acc * scale;
    } else {
      __m512 acc = _mm512_setzero_ps();
      for (size_t c = 0; c < hd; c += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(kj + c), _mm512_loadu_ps(q16 + c), acc);
      s = reduce16_reg(acc) * scale;
    }
    scores[j] = s;
    if (s > mx) mx = s;
  }
  size_t padded = (ctx + 63) & ~(size_t)63;
  for (size_t j = ctx; j < padded; j++) scores[j] = -INFINITY;
  double sum = 0;
  const __m512 vmx = _mm512_set1_ps(mx);
  for (size_t j0 = 0; j0 < padded; j0 += 16) {
    __m512 e = v_expf(_mm512_sub_ps(_mm512_loadu_ps(scores + j0), vmx));
    _mm512_storeu_ps(scores + j0, e);
    sum += (double)reduce16_reg(e);
  }
  const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
  for (size_t j0 = 0; j0 < padded; j0 += 16)
    _mm512_storeu_ps(scores + j0, round_f16(_mm512_mul_ps(_mm512_loadu_ps(scores + j0), inv)));
  // Positions past ctx have weight 0 (exp(-inf)); their v is taken as 0, as llama.cpp's cleared cache holds.
  for (size_t d0 = 0; d0 < hd; d0 += 16) {
    if (one_column) {
      __m512 acc[4][16];
      for (int t = 0; t < 4; t++)
        for (int l = 0; l < 16; l++) acc[t][l] = _mm512_setzero_ps();
      for (size_t e = 0; e < ctx; e++)
        acc[(e / 16) % 4][e % 16] =
          _mm512_fmadd_ps(_mm512_loadu_ps(v + e * hd + d0), _mm512_set1_ps(scores[e]), acc[(e / 16) % 4][e % 16]);
      __m512 s0[16];
      for (int l = 0; l < 16; l++)
        s0[l] = _mm512_add_ps(_mm512_add_ps(acc[0][l], acc[2][l]), _mm512_add_ps(acc[1][l], acc[3][l]));
      _mm512_storeu_ps(out + d0, reduce16_across(s0));
    } else {
      __m512 acc[16];
      for (int l = 0; l < 16; l++) acc[l] = _mm512_setzero_ps();
      for (size_t e = 0; e < ctx; e++)
        acc[e % 16] = _mm512_fmadd_ps(_mm512_loadu_ps(v + e * hd + d0), _mm512_set1_ps(scores[e]), acc[e % 16]);
      _mm512_storeu_ps(out + d0, reduce16_across(acc));
    }
  }
}
#endif

void el_swiglu_ggml(float *g, const float *u, size_t n) {
  const int w = ggml_width();
#ifdef EL_X86
  if (w == 16 && el_internal_avx512()) {
    swiglu_ggml_avx512(g, u, n);
    return;
  }
#endif
  swiglu_ggml_portable(g, u, n, w);
}

#ifdef EL_X86
// attend_ggml_portable in the AVX2 build's width, its lanes as vector lanes. One token (ggml_vec_dot_f16 for the
// scores and for v): the scores' four 8-lane sums are registers; v's 32 position slots (position e feeds slot
// e mod 32) are kept for eight dimensions at a time. A prompt's token (llamafile's tinyBLAS): one 8-lane sum per
// score; v's 8 position slots for eight dimensions at a time. Each (dimension, slot) sums the same products in the
// same order as the portable code, and so do the reductions: the same bits.
__attribute__((target("avx2,fma,f16c"))) static void attend_ggml8_avx2(const float *q, const float *k, const float *v,
                                                                      size_t ctx, size_t hd, float scale,
                                                                      float *scores, float *out, int one_column) {
  float q16[512];
  for (size_t d = 0; d < hd; d += 8)
    _mm256_storeu_ps(q16 + d, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(q + d), _MM_FROUND_TO_NEAREST_INT)));
  const size_t np = hd / 32 * 32;
  float mx = -INFINITY;
  for (size_t j = 0; j < ctx && !one_column; j++) {
    const float *kj = k + j * hd;
    __m256 a = _mm256_setzero_ps();
    for (size_t c = 0; c < hd; c += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(kj + c), _mm256_loadu_ps(q16 + c), a);
    float lanes[8];
    _mm256_storeu_ps(lanes, a);
    const float sc = el_hsum8(lanes) * scale;
    scores[j] = sc;
    if (sc > mx) mx = sc;
  }
  for (size_t j = 0; j < ctx && one_column; j++) {
    const float *kj = k + j * hd;
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t i = 0; i < np; i += 32)
      for (int t = 0; t < 4; t++)
        a[t] = _mm256_fmadd_ps(_mm256_loadu_ps(kj + i + 8 * t), _mm256_loadu_ps(q16 + i + 8 * t), a[t]);
    const __m256 c = _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[1], a[3]));
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
    x = _mm_hadd_ps(x, x);
    double sum = (double)_mm_cvtss_f32(_mm_hadd_ps(x, x));
    for (size_t i = np; i < hd; i++) sum += (double)(kj[i] * q16[i]);
    const float sc = (float)sum * scale;
    scores[j] = sc;
    if (sc > mx) mx = sc;
  }
  double total = 0;
  float acc[8];
  for (size_t j0 = 0; j0 < ctx; j0 += 8) {
    for (size_t l = 0; l < 8; l++) {
      size_t j = j0 + l;
      acc[l] = j < ctx ? ggml_expf8(scores[j] - mx) : 0.0f;
      if (j < ctx) scores[j] = acc[l];
    }
    total += (double)el_hsum8(acc);
  }
  const float inv = (float)(1.0 / total);
  for (size_t j = 0; j < ctx; j++) scores[j] = el_f16_to_f32(el_f32_to_f16(scores[j] * inv));
  if (!one_column) {
    for (size_t d0 = 0; d0 < hd; d0 += 8) {
      __m256 slot[8];
      for (int i = 0; i < 8; i++) slot[i] = _mm256_setzero_ps();
      for (size_t j = 0; j < ctx; j++)
        slot[j % 8] = _mm256_fmadd_ps(_mm256_loadu_ps(v + j * hd + d0), _mm256_set1_ps(scores[j]), slot[j % 8]);
      // reduce8 per dimension: halves, then (0 + 2) + (1 + 3).
      __m256 x[4];
      for (int i = 0; i < 4; i++) x[i] = _mm256_add_ps(slot[4 + i], slot[i]);
      _mm256_storeu_ps(out + d0, _mm256_add_ps(_mm256_add_ps(x[0], x[2]), _mm256_add_ps(x[1], x[3])));
    }
    return;
  }
  const size_t n = (ctx + 31) / 32 * 32;
  for (size_t j = ctx; j < n; j++) scores[j] = 0;
  for (size_t d0 = 0; d0 < hd; d0 += 8) {
    __m256 slot[32];
    for (int i = 0; i < 32; i++) slot[i] = _mm256_setzero_ps();
    for (size_t e = 0; e < n; e++) {
      const __m256 ve = e < ctx ? _mm256_loadu_ps(v + e * hd + d0) : _mm256_setzero_ps();
      slot[e % 32] = _mm256_fmadd_ps(ve, _mm256_set1_ps(scores[e]), slot[e % 32]);
    }
    // Per dimension: slots (jj, l) = 8jj + l combined (0 + 2) + (1 + 3) over jj, then halves and two pairs.
    __m256 u[8];
    for (int l = 0; l < 8; l++)
      u[l] = _mm256_add_ps(_mm256_add_ps(slot[l], slot[16 + l]), _mm256_add_ps(slot[8 + l], slot[24 + l]));
    __m256 xv[4];
    for (int i = 0; i < 4; i++) xv[i] = _mm256_add_ps(u[i], u[i + 4]);
    _mm256_storeu_ps(out + d0, _mm256_add_ps(_mm256_add_ps(xv[0], xv[1]), _mm256_add_ps(xv[2], xv[3])));
  }
}
#endif

void el_attend_ggml(const float *q, const float *k, const float *v, size_t ctx, size_t head_dim, float scale,
                    float *scores, float *out, int one_column) {
  if (head_dim > 512 || head_dim % 16 != 0) {  // outside the precondition: llama.cpp's rounding without its orders
    el_attend_f16(q, k, v, ctx, head_dim, scale, scores, out);
    return;
  }
  const int w = ggml_width();
#ifdef EL_X86
  if (w == 16 && el_internal_avx512()) {
    attend_ggml_avx512(q, k, v, ctx, head_dim, scale, scores, out, one_column);
    return;
  }
  if (w == 8 && el_internal_avx2()) {
    attend_ggml8_avx2(q, k, v, ctx, head_dim, scale, scores, out, one_column);
    return;
  }
#endif
  attend_ggml_portable(q, k, v, ctx, head_dim, scale, scores, out, one_column, w);
}
