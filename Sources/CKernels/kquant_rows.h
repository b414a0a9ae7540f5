// The K-quant row kernels of kquant.c (one row times Q8_K inputs, llama.cpp's vec_dot_q{4,5,6}_K arithmetic),
// written with AVX2 intrinsics and included twice: compiled for AVX2 (EL_KROW_TARGET "avx2,fma,f16c", names
// ending _avx2) and for the "avx512" level (the same intrinsics with AVX-512 F/BW/VL enabled, EL_AVX512_LEVEL, names
// ending _avx512).
// llama.cpp builds its AVX2 code with -march=native, so on an AVX-512 CPU the compiler encodes it with EVEX and
// has 32 vector registers: the Q6_K kernel streamed 22.5 GB/s compiled for AVX2 and 25.7 compiled so, on the
// AVX-512 machine of docs/performance.md. The same operations in the same order: the same bits either way.
// Included by kquant.c only, after its AVX2 helpers; kquant.c sets EL_KROW_TARGET and EL_KROW_SUFFIX (the names'
// ending, used by EL_KROW) before each inclusion.

// A row's product: lane by lane fmaf((float)S, d_w·d_x, acc) and fmaf((float)M, dmin_w·d_x, accm) per super-block
// (lane 0: acc, lane 1: accm), then acc − accm.
EL_KROW_TARGET static float EL_KROW(q4_k)(const uint8_t *row, size_t nb, const el_act_kblock *a, int gemm) {
  if (gemm) return q4_k_portable(row, nb, a, 1);  // only rows that are not repacked come here
  __m128 acc = _mm_setzero_ps(), t;
  for (size_t i = 0; i < nb; i++) {
    const __m128 d = q4_k_block(row + i * 144, a + i, &t);
    acc = _mm_fmadd_ps(t, d, acc);
  }
  return _mm_cvtss_f32(acc) - _mm_cvtss_f32(_mm_shuffle_ps(acc, acc, 1));
}

EL_KROW_TARGET static float EL_KROW(q5_k)(const uint8_t *row, size_t nb, const el_act_kblock *a, int tiled) {
  const __m256i m4 = _mm256_set1_epi8(0xF), m16 = _mm256_set1_epi8(16);
  __m256 acc = _mm256_setzero_ps();
  float summs = 0;
  for (size_t i = 0; i < nb; i++) {
    const uint8_t *b = row + i * 176, *q5 = b + 48;
    const el_act_kblock *y = a + i;
    _mm_prefetch((const char *)b + 1024, _MM_HINT_T0);
    _mm_prefetch((const char *)b + 1088, _MM_HINT_T0);
    _mm_prefetch((const char *)b + 1152, _MM_HINT_T0);
    const float d = y->d * f16c(b), dmin = -y->d * f16c(b + 2);
    const __m256i sm = scales_mins(b + 4);
    const int32_t m = min_term_avx2(sm, y);
    if (!tiled) summs = fmaf(dmin, (float)m, summs);
    const __m256i scales = _mm256_permute2x128_si256(sm, sm, 0);
    const __m256i hbits = _mm256_loadu_si256((const __m256i *)(b + 16));
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; j++) {
      const __m256i bits = _mm256_loadu_si256((const __m256i *)(q5 + 32 * j));
      // The fifth bits: bit 2j (resp. 2j + 1) of each byte of qh, moved to bit 4.
      const __m256i h0 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(hbits, 2 * j), 4), m16);
      const __m256i h1 = _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(hbits, 2 * j + 1), 4), m16);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, m4), h0);
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), h1);
      __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(y->q + 64 * j)));
      __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(y->q + 64 * j + 32)));
      p0 = _mm256_madd_epi16(lane16(scales, 2 * j), p0);
      p1 = _mm256_madd_epi16(lane16(scales, 2 * j + 1), p1);
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    if (tiled) {
      const float r = fmaf(-f16c(b + 2), (float)m, f16c(b) * (float)el_hsum_i32_avx2(sumi));
      summs = fmaf(r, y->d, summs);
      continue;
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return tiled ? summs : el_hsum8_avx2(acc) + summs;
}

EL_KROW_TARGET static float EL_KROW(q6_k)(const uint8_t *row, size_t nb, const el_act_kblock *a, int tiled) {
  const __m256i m3 = _mm256_set1_epi8(3), m15 = _mm256_set1_epi8(15);
  __m256 acc = _mm256_setzero_ps();
  float total = 0;
  for (size_t i = 0; i < nb; i++) {
    const uint8_t *b = row + i * 210, *ql = b, *qh = b + 128;
    const el_act_kblock *y = a + i;
    const float d = y->d * f16c(b + 208);
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)(b + 192));
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    const __m256i sums = _mm256_loadu_si256((const __m256i *)y->bsums);
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sums, sc16), 5));
    for (int j = 0; j < 2; j++) {
      const __m256i b1 = _mm256_loadu_si256((const __m256i *)(ql + 64 * j));
      const __m256i b2 = _mm256_loadu_si256((const __m256i *)(ql + 64 * j + 32));
      const __m256i bh = _mm256_loadu_si256((const __m256i *)(qh + 32 * j));
      // The two high bits of each value moved to bits 4–5 (ggml's masks: two operations each).
      const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(bh, m3), 4);
      const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(bh, _mm256_set1_epi8(12)), 2);
      const __m256i h2 = _mm256_and_si256(bh, _mm256_set1_epi8(48));
      const __m256i h3 = _mm256_srli_epi16(_mm256_and_si256(bh, _mm256_set1_epi8(-64)), 2);
      const __m256i q0 = _mm256_or_si256(_mm256_and_si256(b1, m15), h0);
      const __m256i q1 = _mm256_or_si256(_mm256_and_si256(b2, m15), h1);
      const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m15), h2);
      const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m15), h3);
      const __m256i qs[4] = {q0, q1, q2, q3};
      for (int t = 0; t < 4; t++) {
        __m256i p = _mm256_maddubs_epi16(qs[t], _mm256_loadu_si256((const __m256i *)(y->q + 128 * j + 32 * t)));
        // Values 0–15 of these 32 take scale 8j + 2t, values 16–31 scale 8j + 2t + 1 (a byte shuffle of the 16
        // scales, then widened: ggml's get_scale_shuffle).
        const long long is = 8 * j + 2 * t;
        const __m256i scale = _mm256_cvtepi8_epi16(
          _mm_shuffle_epi8(sc8, _mm_set_epi64x(0x0101010101010101ll * (is + 1), 0x0101010101010101ll * is)));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale, p));
      }
    }
    if (tiled) {
      total = fmaf(f16c(b + 208) * (float)el_hsum_i32_avx2(sumi), y->d, total);
      continue;
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return tiled ? total : el_hsum8_avx2(acc);
}

// Rows [r0, r1) of a matrix times one input (a decode step; the form every kernel takes for a batch of one) into
// y[r0..<r1], the row kernels above inlined into the loop.
EL_KROW_TARGET static void EL_KROW(krows)(el_dtype t, const void *w, size_t bytes, size_t nb, const el_act_kblock *a,
                                         float *y, size_t r0, size_t r1) {
  const uint8_t *m = w;
  switch (t) {
  case EL_Q4_K:
    for (size_t r = r0; r < r1; r++) y[r] = EL_KROW(q4_k)(m + r * bytes, nb, a, 0);
    break;
  case EL_Q5_K:
    for (size_t r = r0; r < r1; r++) y[r] = EL_KROW(q5_k)(m + r * bytes, nb, a, 0);
    break;
  default:
    for (size_t r = r0; r < r1; r++) y[r] = EL_KROW(q6_k)(m + r * bytes, nb, a, 0);
    break;
  }
}
