// NEON kernels for aarch64 (the Jetsons' Cortex-A78AE, Raspberry Pi 5, Apple silicon under Linux): every aarch64 CPU
// has NEON; the dot-product instructions (ARMv8.2's SDOT, Cortex-A76/A78 and later) are used where the kernel
// reports them (HWCAP_ASIMDDP).
//
// Exact arithmetic (F32, BF16, F16 weights): the order of additions of the AVX2 and portable kernels (32 partial
// sums), so the same bits.
// llama.cpp's arithmetic (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 with 8-bit inputs per 32; Q4_K, Q5_K, Q6_K with ggml's
// Q8_K inputs): the integer lanes (each the sum of four consecutive byte products) and the float operations of the
// portable functions, so the same bits as every other instruction set. SDOT computes exactly such lanes; without
// it, widening multiplies and two pairwise additions do.
#include "edgelab_kernels.h"
#include "internal.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <math.h>

#if defined(__clang__)
#define EL_DOTPROD __attribute__((target("dotprod")))
#else
#define EL_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

static inline float hsum8_neon(float32x4_t lo, float32x4_t hi) {
  float32x4_t r = vaddq_f32(lo, hi);  // r_i = a_i + a_(i+4)
  return (vgetq_lane_f32(r, 0) + vgetq_lane_f32(r, 2)) + (vgetq_lane_f32(r, 1) + vgetq_lane_f32(r, 3));
}

// ---------------------------------------------------------------------------------------------------------
// Exact arithmetic

static inline float32x4_t load4(const void *w, el_dtype t, size_t i) {
  switch (t) {
  case EL_F32: return vld1q_f32((const float *)w + i);
  case EL_BF16: case EL_BF16_GGML: return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)w + i), 16));
  default: return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)w + i)));
  }
}

static inline float load1(const void *w, el_dtype t, size_t i) {
  switch (t) {
  case EL_F32: return ((const float *)w)[i];
  case EL_BF16: case EL_BF16_GGML: {
    uint32_t u = (uint32_t)((const uint16_t *)w)[i] << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  default: return el_half_to_float(((const uint16_t *)w)[i]);
  }
}

// One function per weight type keeps the loads free of branches. The 32 partial sums and their reduction are the
// AVX2 kernel's (n[2m], n[2m + 1] hold its accumulator m), so the same bits as on x86 without AVX-512.
#define EL_NEON_MATVEC(NAME, T)                                                                                  \
  static void NAME(const void *w, size_t cols, const float *x, size_t xs, size_t batch, float *y, size_t ys,    \
                   size_t r0, size_t r1) {                                                                      \
    for (size_t r = r0; r < r1; r++) {                                                                          \
      const size_t base = r * cols;                                                                             \
      for (size_t b = 0; b < batch; b++) {                                                                      \
        const float *xb = x + b * xs;                                                                           \
        float32x4_t n[8];                                                                                       \
        for (int k = 0; k < 8; k++) n[k] = vdupq_n_f32(0);                                                      \
        size_t c = 0;                                                                                           \
        for (; c + 32 <= cols; c += 32)                                                                         \
          for (int k = 0; k < 8; k++) n[k] = vfmaq_f32(n[k], load4(w, T, base + c + 4 * k), vld1q_f32(xb + c + 4 * k)); \
        const float32x4_t lo = vaddq_f32(vaddq_f32(n[0], n[4]), vaddq_f32(n[2], n[6]));                         \
        const float32x4_t hi = vaddq_f32(vaddq_f32(n[1], n[5]), vaddq_f32(n[3], n[7]));                         \
        const float32x4_t v = vaddq_f32(lo, hi);                                                                \
        double s = T == EL_BF16_GGML ? hsum8_neon(lo, hi)                                                       \
                                : (vgetq_lane_f32(v, 0) + vgetq_lane_f32(v, 1)) + (vgetq_lane_f32(v, 2) + vgetq_lane_f32(v, 3)); \
        for (; c < cols; c++) s += (double)(load1(w, T, base + c) * xb[c]);                                     \
        y[b * ys + r] = (float)s;                                                                               \
      }                                                                                                         \
    }                                                                                                           \
  }
EL_NEON_MATVEC(matvec_f32, EL_F32)
EL_NEON_MATVEC(matvec_bf16, EL_BF16)
EL_NEON_MATVEC(matvec_bf16g, EL_BF16_GGML)
EL_NEON_MATVEC(matvec_f16, EL_F16)

void el_neon_matvec(const void *w, el_dtype t, size_t cols, const float *x, size_t xs, size_t batch, float *y,
                    size_t ys, size_t r0, size_t r1) {
  if (t == EL_F32) matvec_f32(w, cols, x, xs, batch, y, ys, r0, r1);
  else if (t == EL_BF16) matvec_bf16(w, cols, x, xs, batch, y, ys, r0, r1);
  else if (t == EL_BF16_GGML) matvec_bf16g(w, cols, x, xs, batch, y, ys, r0, r1);
  else matvec_f16(w, cols, x, xs, batch, y, ys, r0, r1);
}

// ---------------------------------------------------------------------------------------------------------
// Integer lanes: lane k of the result is the sum of the products of bytes 4k–4k+3 of a and b (16 bytes, 4 lanes).

#define EL_DOT_SDOT(a, b) vdotq_s32(vdupq_n_s32(0), (a), (b))
#define EL_DOT_PLAIN(a, b)                                                                                       \
  vpaddq_s32(vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b))), vpaddlq_s16(vmull_high_s8((a), (b))))

// Nibbles of 16 bytes in value order: low nibbles are values 0–15, high nibbles 16–31.
static inline int8x16_t low_nibbles(uint8x16_t v) { return vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))); }
static inline int8x16_t high_nibbles(uint8x16_t v) { return vreinterpretq_s8_u8(vshrq_n_u8(v, 4)); }

// Byte j of the result is 0x10 where bit `first + j` of the 32-bit word at p is set (a Q5_0 / Q5_1 fifth bit).
static inline uint8x16_t fifth_bits(const uint8_t *p, int first) {
  const uint8_t b0 = p[first / 8], b1 = p[first / 8 + 1];
  static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  uint8x16_t v = vcombine_u8(vdup_n_u8(b0), vdup_n_u8(b1));
  return vandq_u8(vtstq_u8(v, vld1q_u8(bit)), vdupq_n_u8(0x10));
}

// The 32 weights of a block as signed bytes in value order (Q4_0: 0–15, its offset comes in through Σq).
static inline void block_bytes(el_dtype t, const uint8_t *qs, int8x16_t *w0, int8x16_t *w1) {
  if (t == EL_Q8_0) {
    *w0 = vld1q_s8((const int8_t *)qs);
    *w1 = vld1q_s8((const int8_t *)qs + 16);
    return;
  }
  uint8x16_t v = vld1q_u8(qs);
  *w0 = low_nibbles(v);
  *w1 = high_nibbles(v);
  if (t == EL_Q5_0 || t == EL_Q5_1) {
    *w0 = vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(*w0), fifth_bits(qs - 4, 0)));
    *w1 = vreinterpretq_s8_u8(vorrq_u8(vreinterpretq_u8_s8(*w1), fifth_bits(qs - 4, 16)));
    if (t == EL_Q5_0) {
      *w0 = vsubq_s8(*w0, vdupq_n_s8(16));
      *w1 = vsubq_s8(*w1, vdupq_n_s8(16));
    }
  }
}

#define EL_NEON_ACT(NAME, ATTR, DOT)                                                                             \
  ATTR static float NAME(const uint8_t *w, el_dtype t, size_t nb, size_t r, const el_act_block *a) {           \
    float32x4_t lo = vdupq_n_f32(0), hi = lo;                                                                   \
    float extra = 0;                                                                                            \
    for (size_t i = 0; i < nb; i++) {                                                                           \
      const el_act_block *y = a + i;                                                                            \
      uint8_t tmp[16];                                                                                          \
      const uint8_t *qs, *b = el_act_weights(w, t, nb, r, i, &qs, tmp);                                         \
      int8x16_t w0, w1;                                                                                         \
      block_bytes(t, qs, &w0, &w1);                                                                             \
      const float dd = el_half_at(b) * y->d;                                   \
      if (t == EL_Q4_0 || t == EL_Q4_0X8) {                                                                     \
        const int32x4_t l = vaddq_s32(DOT(w0, vld1q_s8(y->q)), DOT(w1, vld1q_s8(y->q + 16)));                   \
        extra = fmaf((float)(vaddvq_s32(l) - 8 * y->sum), dd, extra);                                           \
        continue;                                                                                               \
      }                                                                                                         \
      lo = vfmaq_n_f32(lo, vcvtq_f32_s32(DOT(w0, vld1q_s8(y->q))), dd);                                         \
      hi = vfmaq_n_f32(hi, vcvtq_f32_s32(DOT(w1, vld1q_s8(y->q + 16))), dd);                                    \
      if (t == EL_Q4_1 || t == EL_Q5_1) extra = fmaf(el_half_at(b + 2), y->s, extra); \
    }                                                                                                           \
    return (t == EL_Q4_0 || t == EL_Q4_0X8) ? extra : hsum8_neon(lo, hi) + extra;                              \
  }
EL_NEON_ACT(act_plain, , EL_DOT_PLAIN)
EL_NEON_ACT(act_sdot, EL_DOTPROD, EL_DOT_SDOT)

void el_neon_act(const void *w, el_dtype t, size_t cols, const el_act_block *x, size_t xs, size_t batch, float *y,
                 size_t ys, size_t r0, size_t r1) {
  float (*fn)(const uint8_t *, el_dtype, size_t, size_t, const el_act_block *) =
    el_internal_neon_dotprod() ? act_sdot : act_plain;
  const size_t nb = cols / 32;
  for (size_t r = r0; r < r1; r++)
    for (size_t k = 0; k < batch; k++) y[k * ys + r] = fn(w, t, nb, r, x + k * xs);
}

// ---------------------------------------------------------------------------------------------------------
// K-quants (see kquant.c for the arithmetic)

#define EL_NEON_K(SUFFIX, ATTR, DOT)                                                                             \
  ATTR static float q4_k_##SUFFIX(const uint8_t *row, size_t nb, const el_act_kblock *a) {                     \
    float acc = 0, accm = 0;                                                                                    \
    for (size_t i = 0; i < nb; i++) {                                                                           \
      const uint8_t *b = row + i * 144, *qs = b + 16;                                                           \
      const el_act_kblock *y = a + i;                                                                           \
      int32_t s = 0;                                                                                            \
      for (int j = 0; j < 4; j++) {                                                                             \
        int sc0, sc1, m;                                                                                        \
        el_k_scale_min(2 * j, b + 4, &sc0, &m);                                                                      \
        el_k_scale_min(2 * j + 1, b + 4, &sc1, &m);                                                                  \
        const uint8x16_t v0 = vld1q_u8(qs + 32 * j), v1 = vld1q_u8(qs + 32 * j + 16);                           \
        const int8_t *q = y->q + 64 * j;                                                                        \
        int32x4_t l = vaddq_s32(DOT(low_nibbles(v0), vld1q_s8(q)), DOT(low_nibbles(v1), vld1q_s8(q + 16)));     \
        int32x4_t h = vaddq_s32(DOT(high_nibbles(v0), vld1q_s8(q + 32)), DOT(high_nibbles(v1), vld1q_s8(q + 48))); \
        s += sc0 * vaddvq_s32(l) + sc1 * vaddvq_s32(h);                                                         \
      }                                                                                                         \
      acc = fmaf((float)s, el_half_at(b) * y->d, acc);                                                               \
      accm = fmaf((float)el_k_min_term(b + 4, y), el_half_at(b + 2) * y->d, accm);                                        \
    }                                                                                                           \
    return acc - accm;                                                                                          \
  }                                                                                                             \
  ATTR static float q5_k_##SUFFIX(const uint8_t *row, size_t nb, const el_act_kblock *a) {                     \
    float32x4_t lo = vdupq_n_f32(0), hi = lo;                                                                   \
    float summs = 0;                                                                                            \
    for (size_t i = 0; i < nb; i++) {                                                                           \
      const uint8_t *b = row + i * 176, *qs = b + 48;                                                           \
      const el_act_kblock *y = a + i;                                                                           \
      const float d = y->d * el_half_at(b), dmin = -y->d * el_half_at(b + 2);                                             \
      summs = fmaf(dmin, (float)el_k_min_term(b + 4, y), summs);                                                     \
      const uint8x16_t h0 = vld1q_u8(b + 16), h1 = vld1q_u8(b + 32), sixteen = vdupq_n_u8(16);                 \
      int32x4_t s0 = vdupq_n_s32(0), s1 = s0;                                                                   \
      for (int j = 0; j < 4; j++) {                                                                             \
        int sc0, sc1, m;                                                                                        \
        el_k_scale_min(2 * j, b + 4, &sc0, &m);                                                                      \
        el_k_scale_min(2 * j + 1, b + 4, &sc1, &m);                                                                  \
        const int8x16_t shift0 = vdupq_n_s8((int8_t)(4 - 2 * j)), shift1 = vdupq_n_s8((int8_t)(3 - 2 * j));      \
        const uint8x16_t v0 = vld1q_u8(qs + 32 * j), v1 = vld1q_u8(qs + 32 * j + 16);                           \
        /* Bit 2j (resp. 2j + 1) of qh moved to bit 4. */                                                       \
        const int8x16_t l0 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v0, vdupq_n_u8(15)), vandq_u8(vshlq_u8(h0, shift0), sixteen))); \
        const int8x16_t l1 = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v1, vdupq_n_u8(15)), vandq_u8(vshlq_u8(h1, shift0), sixteen))); \
        const int8x16_t u0 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v0, 4), vandq_u8(vshlq_u8(h0, shift1), sixteen))); \
        const int8x16_t u1 = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v1, 4), vandq_u8(vshlq_u8(h1, shift1), sixteen))); \
        const int8_t *q = y->q + 64 * j;                                                                        \
        s0 = vmlaq_n_s32(s0, DOT(l0, vld1q_s8(q)), sc0);                                                        \
        s1 = vmlaq_n_s32(s1, DOT(l1, vld1q_s8(q + 16)), sc0);                                                   \
        s0 = vmlaq_n_s32(s0, DOT(u0, vld1q_s8(q + 32)), sc1);                                                   \
        s1 = vmlaq_n_s32(s1, DOT(u1, vld1q_s8(q + 48)), sc1);                                                   \
      }                                                                                                         \
      lo = vfmaq_n_f32(lo, vcvtq_f32_s32(s0), d);                                                               \
      hi = vfmaq_n_f32(hi, vcvtq_f32_s32(s1), d);                                                               \
    }                                                                                                           \
    return hsum8_neon(lo, hi) + summs;                                                                          \
  }                                                                                                             \
  ATTR static float q6_k_##SUFFIX(const uint8_t *row, size_t nb, const el_act_kblock *a) {                     \
    float32x4_t lo = vdupq_n_f32(0), hi = lo;                                                                   \
    for (size_t i = 0; i < nb; i++) {                                                                           \
      const uint8_t *b = row + i * 210;                                                                         \
      const int8_t *sc = (const int8_t *)(b + 192);                                                             \
      const el_act_kblock *y = a + i;                                                                           \
      const float d = y->d * el_half_at(b + 208);                                                                    \
      int32_t start[8];                                                                                         \
      for (int k = 0; k < 8; k++)                                                                               \
        start[k] = -32 * (y->bsums[2 * k] * sc[2 * k] + y->bsums[2 * k + 1] * sc[2 * k + 1]);                   \
      int32x4_t s0 = vld1q_s32(start), s1 = vld1q_s32(start + 4);                                               \
      const uint8x16_t m15 = vdupq_n_u8(15), m3 = vdupq_n_u8(3);                                                \
      for (int j = 0; j < 2; j++) {                                                                             \
        const uint8_t *ql = b + 64 * j, *qh = b + 128 + 32 * j;                                                 \
        for (int half = 0; half < 2; half++) {                                                                  \
          const uint8x16_t l0 = vld1q_u8(ql + 16 * half), l1 = vld1q_u8(ql + 32 + 16 * half);                   \
          const uint8x16_t h = vld1q_u8(qh + 16 * half);                                                        \
          const int8x16_t q[4] = {                                                                              \
            vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l0, m15), vshlq_n_u8(vandq_u8(h, m3), 4))),                   \
            vreinterpretq_s8_u8(vorrq_u8(vandq_u8(l1, m15), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4))),    \
            vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4))),    \
            vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4)))};                 \
          for (int t = 0; t < 4; t++) {                                                                         \
            const int32x4_t p = DOT(q[t], vld1q_s8(y->q + 128 * j + 32 * t + 16 * half));                      \
            /* Values 0–15 of each 32 (lanes 0–3) take scale 8j + 2t, values 16–31 (lanes 4–7) the next. */     \
            if (half == 0) s0 = vmlaq_n_s32(s0, p, sc[8 * j + 2 * t]);                                          \
            else s1 = vmlaq_n_s32(s1, p, sc[8 * j + 2 * t + 1]);                                                \
          }                                                                                                     \
        }                                                                                                       \
      }                                                                                                         \
      lo = vfmaq_n_f32(lo, vcvtq_f32_s32(s0), d);                                                               \
      hi = vfmaq_n_f32(hi, vcvtq_f32_s32(s1), d);                                                               \
    }                                                                                                           \
    return hsum8_neon(lo, hi);                                                                                  \
  }
EL_NEON_K(plain, , EL_DOT_PLAIN)
EL_NEON_K(sdot, EL_DOTPROD, EL_DOT_SDOT)

void el_neon_actk(const void *w, el_dtype t, size_t cols, const el_act_kblock *x, size_t xs, size_t batch, float *y,
                  size_t ys, size_t r0, size_t r1) {
  float (*fn)(const uint8_t *, size_t, const el_act_kblock *);
  if (el_internal_neon_dotprod()) fn = t == EL_Q4_K ? q4_k_sdot : (t == EL_Q5_K ? q5_k_sdot : q6_k_sdot);
  else fn = t == EL_Q4_K ? q4_k_plain : (t == EL_Q5_K ? q5_k_plain : q6_k_plain);
  const size_t nb = cols / 256, bytes = nb * el_block_bytes(t);
  for (size_t r = r0; r < r1; r++)
    for (size_t k = 0; k < batch; k++) {
      const uint8_t *row = (const uint8_t *)w + r * bytes;
      // The batch forms of llama.cpp's x86 kernels (a prompt's tokens) run the portable code.
      y[k * ys + r] = el_actk_form(t, k, batch) ? el_actk_portable(row, t, nb, x + k * xs, 1) : fn(row, nb, x + k * xs);
    }
}
#else
// Not aarch64: never called (el_internal_neon() is 0).
void el_neon_matvec(const void *w, el_dtype t, size_t cols, const float *x, size_t xs, size_t batch, float *y,
                    size_t ys, size_t r0, size_t r1) {
  (void)w, (void)t, (void)cols, (void)x, (void)xs, (void)batch, (void)y, (void)ys, (void)r0, (void)r1;
}
void el_neon_act(const void *w, el_dtype t, size_t cols, const el_act_block *x, size_t xs, size_t batch, float *y,
                 size_t ys, size_t r0, size_t r1) {
  (void)w, (void)t, (void)cols, (void)x, (void)xs, (void)batch, (void)y, (void)ys, (void)r0, (void)r1;
}
void el_neon_actk(const void *w, el_dtype t, size_t cols, const el_act_kblock *x, size_t xs, size_t batch, float *y,
                  size_t ys, size_t r0, size_t r1) {
  (void)w, (void)t, (void)cols, (void)x, (void)xs, (void)batch, (void)y, (void)ys, (void)r0, (void)r1;
}
#endif
