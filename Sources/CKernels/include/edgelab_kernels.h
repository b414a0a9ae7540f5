#ifndef EDGELAB_KERNELS_H
#define EDGELAB_KERNELS_H
// Matrix-times-few-vectors kernels for decoding (memory-bound), with runtime instruction-set dispatch.
//
// y[b][r] = dot(W[r, :], x[b]) for rows r in [row_begin, row_end) and inputs b in [0, batch).
// W is row-major [rows, cols] (Hugging Face's [out, in] layout), stored as float32, bfloat16, float16 or one of
// llama.cpp's block-quantized types (each row a sequence of blocks; cols a multiple of the block size). 16-bit
// weights are widened exactly to float32 inside the loop; quantized blocks are dequantized in registers and
// multiplied with the float32 inputs (no float32 copy of the matrix; the 5-bit types on the portable path only). Each output is one dot product with a fixed
// summation order that depends only on `cols` and the instruction set chosen at startup, never on `batch`,
// on the row range or on the calling thread: splitting rows across threads, or batching requests, gives
// bit-identical results.
#include <stddef.h>
#include <stdint.h>

typedef enum {
  EL_F32 = 0, EL_BF16 = 1, EL_F16 = 2,
  // ggml's block formats: Q8_0, Q4_0, Q4_1 hold 32 values per block; Q4_K and Q6_K 256 (a super-block).
  EL_Q8_0 = 3, EL_Q4_0 = 4, EL_Q4_1 = 5, EL_Q4_K = 6, EL_Q6_K = 7,
  // Q4_0 repacked for llama.cpp's arithmetic: groups of 8 rows, per block position the 8 rows' scales (16 bytes)
  // then, for k = 0…3, bytes 4k…4k+3 of each row's 16 bytes of nibbles (8 × 4 bytes), so that eight outputs read
  // one stream and one 32-byte load holds values 4k…4k+3 (low nibbles) and 16+4k… (high) of all eight rows
  // (el_repack_q4_0x8). Rows a multiple of 8; only el_act_matvec reads it.
  EL_Q4_0X8 = 8,
  // The 5-bit types: Q5_0 and Q5_1 (32 values per block; the fallbacks of the K mixes for rows that are not whole
  // super-blocks) and Q5_K (256).
  EL_Q5_0 = 9, EL_Q5_1 = 10, EL_Q5_K = 11,
  // Q4_K repacked for llama.cpp's arithmetic: groups of 8 rows, per super-block position 1152 bytes: the 8 rows'
  // d (float16, 16 bytes), their dmin (16), their 12 bytes of scales byte by byte (byte b of row j at 32 + 8b + j),
  // then, for k = 0…31, bytes 4k…4k+3 of each row's 128 bytes of nibbles (at 128 + 32k + 4j) (el_repack_q4_kx8).
  // Rows a multiple of 8; only el_actk_matvec reads it.
  EL_Q4_KX8 = 12,
  // BF16 weights summed as ggml sums BF16 dot products on AVX2 (the last reduction of the four 8-lane sums differs
  // from its F32 one); EL_BF16 sums as F32 does, so that BF16 storage gives the bits of its FP32 widening.
  EL_BF16_GGML = 13,
  // BF16 weights times inputs rounded to BF16, summed as the AVX512-BF16 dot-product instruction sums them (pairs
  // of products added to 16 lanes) in the orders of llama.cpp's AVX-512 build on a CPU that has it (bf16dot.c).
  EL_BF16_DP = 14
} el_dtype;



// Repacks a Q4_0 matrix of `rows` (a multiple of 8) × `cols` into EL_Q4_0X8 (same size).
void el_repack_q4_0x8(const void *src, void *dst, size_t rows, size_t cols);

// Repacks a Q4_K matrix of `rows` (a multiple of 8) × `cols` into EL_Q4_KX8 (same size), and whether the kernels
// for it run on this CPU (x86 with AVX2: llama.cpp repacks Q4_K there; elsewhere it keeps the file's layout).
void el_repack_q4_kx8(const void *src, void *dst, size_t rows, size_t cols);
int el_repack_q4_kx8_wanted(void);

// Values per block (1 for the plain types) and bytes per block.
size_t el_block_values(el_dtype dtype);
size_t el_block_bytes(el_dtype dtype);

void el_matvec(const void *w, el_dtype dtype, size_t cols, const float *x, size_t x_stride, size_t batch,
               float *y, size_t y_stride, size_t row_begin, size_t row_end);

// llama.cpp's arithmetic for Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 weights: each input row is quantized once to 8-bit
// blocks of 32 (as ggml's quantize_row_q8_0 / q8_1 do on x86), and a row's product sums exact integer block
// products, each scaled by the two blocks' scales (Q4_1, Q5_1: plus the weight block's minimum times the input
// block's sum). The integers go into eight lanes of four values each and the lanes into eight float sums, as
// ggml's AVX2 and AVX-512 code does: every instruction set here (portable, AVX2, AVX-512) gives the same bits.
typedef struct {
  float d;      // the input block's scale (its float16 value)
  float s;      // float16(d · Σq) as ggml's Q8_1 keeps it
  int32_t sum;  // Σq
  int32_t pad;
  int8_t q[32];
} el_act_block;
size_t el_act_block_bytes(void);
int el_act_supported(el_dtype dtype);
// Quantizes n inputs (a multiple of 32) into n / 32 blocks.
void el_quantize_act(const float *x, size_t n, el_act_block *out);
// y[b * y_stride + r] = row r of W (Q8_0, Q4_0, Q4_1, Q5_0 or Q5_1) · input b (blocks at x + b * x_stride), r in
// [row_begin, row_end).
void el_act_matvec(const void *w, el_dtype dtype, size_t cols, const el_act_block *x, size_t x_stride, size_t batch,
                   float *y, size_t y_stride, size_t row_begin, size_t row_end);

// llama.cpp's arithmetic for the K-quants (Q4_K, Q5_K, Q6_K): inputs quantized to ggml's Q8_K (256 values, one
// float scale, sums of 16), exact integer products per super-block. Q4_K sums as llama.cpp's repacked 8-row kernel
// on x86 does (it repacks every Q4_K matrix whose rows are a multiple of 8): per row, the block's integer total
// and its integer minimum term, each scaled once (two float sums, subtracted at the end); for a batch's first
// tokens in whole fours, as its gemm does (each 64 values scaled on their own). Q5_K and Q6_K sum as ggml's AVX2
// vec_dot (eight integer lanes per super-block, eight float sums), or for batches of 8 or more as its tiled matmul
// (one integer per super-block, scaled by d_w, then fused with d_x). The results depend on the batch, as llama.cpp's
// do; the same bits on every instruction set.
typedef struct {
  float d;
  int8_t q[256];
  int16_t bsums[16];  // sums of 16 consecutive q
} el_act_kblock;
size_t el_act_kblock_bytes(void);
int el_actk_supported(el_dtype dtype);
// Quantizes n inputs (a multiple of 256) into n / 256 blocks, as ggml's quantize_row_q8_K_ref.
void el_quantize_act_k(const float *x, size_t n, el_act_kblock *out);
void el_actk_matvec(const void *w, el_dtype dtype, size_t cols, const el_act_kblock *x, size_t x_stride, size_t batch,
                    float *y, size_t y_stride, size_t row_begin, size_t row_end);

// One matrix of a group multiplied by the same inputs: y[b * y_stride + r] = dot(W[r, :], x[b * x_stride]).
typedef struct {
  const void *w;
  el_dtype dtype;
  size_t rows, cols;
  const float *x;
  size_t x_stride;
  float *y;
  size_t y_stride;
  // When set, the inputs quantized to 8 bits (el_quantize_act; x_q_stride blocks apart): llama.cpp's arithmetic.
  const el_act_block *x_q;
  size_t x_q_stride;
  // The same for the K-quants (el_quantize_act_k; x_k_stride blocks apart).
  const el_act_kblock *x_k;
  size_t x_k_stride;
} el_matvec_job;

// Runs el_matvec over every row of every job on `threads` threads of the pool in one parallel region: rows are handed out
// in chunks of `chunk_rows` from a shared counter, so a thread slowed by the host takes fewer chunks than a
// fast one, and several matrices (Q, K and V; gate and up) cost one synchronisation instead of one each. Each
// output is computed exactly as el_matvec computes it, so the results do not depend on the chunking.
void el_matvec_many(const el_matvec_job *jobs, int job_count, size_t batch, size_t chunk_rows, int threads);

// Prefill products of FP32 weights: c[t * ldc + r] = dot(a[r * lda ...], b[t * ldb ...]) over k values, for rows r in
// [r0, r1) and tokens t in [0, n), in the order of llama.cpp's tinyBLAS with `lanes` partial sums per output (8: its
// AVX2 build, 16: its AVX-512 one; see sgemm.c). The order depends only on k and lanes: every row range, token
// count, thread and instruction set gives the same bits. Needs el_sgemm_supported (rows a multiple of 4, k of
// lanes, as tinyBLAS does) and r0, r1 multiples of 4.
int el_sgemm_supported(size_t rows, size_t cols, int lanes);
// The shapes el_sgemm_many takes for EL_BF16_DP weights (tinyBLAS's steps of 32 for VDPBF16PS; `lanes` unused).
int el_bf16dp_supported(size_t rows, size_t cols);
void el_sgemm(const float *a, size_t lda, const float *b, size_t ldb, size_t k, float *c, size_t ldc, size_t n,
              size_t r0, size_t r1, int lanes);
// el_sgemm over every row of every job (x, y and their strides as for el_matvec_many) for `tokens` inputs on
// `threads` threads of the pool, rows handed out in chunks of `chunk_rows` from a shared counter. Weights of other
// types than FP32 are widened (dequantized) exactly, a chunk at a time, into each thread's scratch first.
void el_sgemm_many(const el_matvec_job *jobs, int job_count, size_t tokens, size_t chunk_rows, int lanes, int threads);

// Attention of one query (one head) over a cache of `ctx` positions: k and v are [ctx][head_dim] contiguous.
// out[d] = Σ_j softmax_j(scale · q·k_j) · v_j[d]. `scores` is scratch of ≥ ctx floats. Fixed summation order.
void el_attend(const float *q, const float *k, const float *v, size_t ctx, size_t head_dim, float scale,
               float *scores, float *out);

// As el_attend with llama.cpp's float16 KV cache (k and v already hold float16 values; head_dim ≤ 512): the query
// and the softmax weights rounded to float16, the softmax sum in double.
void el_attend_f16(const float *q, const float *k, const float *v, size_t ctx, size_t head_dim, float scale,
                   float *scores, float *out);

// As llama.cpp computes attention on x86 (float16 cache, no flash attention): its dot products in the order of the
// kernel it picks (llamafile's tinyBLAS for a batch of two or more tokens, ggml_vec_dot_f16 for one), ggml's
// vectorised exponential, float16 weights (see quant.c), as the llama.cpp build for this CPU's vector width
// computes them (el_llamacpp_simd). head_dim a multiple of 16, at most 512; `scores` holds at least ctx rounded up
// to 64 floats.
void el_attend_ggml(const float *q, const float *k, const float *v, size_t ctx, size_t head_dim, float scale,
                    float *scores, float *out, int one_column);
// g[i] = silu(g[i]) · u[i] with ggml's exponential on whole groups of the vector width and expf on the rest, as
// llama.cpp.
void el_swiglu_ggml(float *g, const float *u, size_t n);
// Which llama.cpp build the llama.cpp arithmetic reproduces where ggml's code differs by vector width: "avx512"
// (16 lanes: CPUs with AVX-512F and DQ) or "avx2" (8 lanes: every other CPU), unless EDGELAB_LLAMACPP_SIMD names one
// ("avx512bf16" is the AVX-512 build of a CPU with AVX512-BF16: el_llamacpp_bf16dot).
const char *el_llamacpp_simd(void);
// 1 when EDGELAB_LLAMACPP_SIMD is set to something other than "avx512bf16", "avx512" or "avx2".
int el_llamacpp_simd_request_invalid(void);

// Whether the llama.cpp arithmetic reproduces a build with AVX512-BF16 (BF16 products as EL_BF16_DP): the CPU has
// it and the reproduced build is the CPU's AVX-512 one, or EDGELAB_LLAMACPP_SIMD is "avx512bf16" (which reproduces
// the AVX-512 build of such a CPU; el_llamacpp_simd then says "avx512").
int el_llamacpp_bf16dot(void);

// Widens n 16-bit values to float32 (exact), or dequantizes n values of a block type (n a multiple of the block
// size) exactly as llama.cpp's dequantize_row functions do.
void el_widen(const void *src, el_dtype dtype, float *dst, size_t n);

// Quantizes n float32 values (n a multiple of the block size) into a block type. Q8_0, Q4_0 and Q4_1 round as
// llama.cpp's reference quantizers do; Q4_K and Q6_K use a plain min/max (resp. absolute-max) choice of the
// scales, not llama.cpp's search for the best ones: valid blocks, for synthetic weights.
void el_quantize(const float *src, el_dtype dtype, void *dst, size_t n);

// Float32 <-> IEEE half, rounding to nearest even.
uint16_t el_f32_to_f16(float f);
float el_f16_to_f32(uint16_t h);

// The instruction set in use: "avx512", "avx2" or "portable". The best the CPU has, unless the environment variable
// EDGELAB_KERNEL_ISA names a lesser one ("avx2" or "portable"; read once, at the first kernel call): how the AVX2
// and portable paths are tested and measured on an AVX-512 machine.
const char *el_kernel_isa(void);
// 1 when EDGELAB_KERNEL_ISA is set to something other than "avx512", "avx2" or "portable".
int el_kernel_isa_request_invalid(void);
#endif

#ifndef EDGELAB_POOL_H
#define EDGELAB_POOL_H
// A persistent thread pool for the kernels: `el_parallel` runs fn(ctx, i) for i in [0, count) on the caller and
// up to count − 1 pool threads, which spin briefly between jobs before sleeping. Set the size first.
typedef void (*el_task_fn)(void *ctx, int index);
void el_pool_set_threads(int threads);
void el_parallel(int count, el_task_fn fn, void *ctx);
#endif
