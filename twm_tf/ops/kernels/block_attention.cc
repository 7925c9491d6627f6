// TwmBlockAttention: the attention core of one imagination step, reading the cached key/value
// blocks where they lie. The TensorFlow form concatenates every layer's cache at every step, then
// reads it twice more (scores, context): three passes over memory where this kernel needs one.
// Forward only (imagination carries no gradient); the math is RelativeMultiHeadAttention.call's.

#include <cmath>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace twm {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::OpInputList;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("TwmBlockAttention")
    .Input("query: float")          // [H, B, Q, D] the last Q tokens' queries, without biases
    .Input("content_bias: float")   // [H, D] u
    .Input("position_bias: float")  // [H, D] v
    .Input("relative: float")       // [T, H, D] projected encodings; row c: distance T - 1 - c
    .Input("mask: bool")            // [B, Q, T] true where query i may attend key j
    .Input("keys: N * float")       // [H, B, K_n, D] per block, oldest first; sum K_n = T
    .Input("values: N * float")     // as keys
    .Output("context: float")       // [B, Q, H, D]
    .Attr("N: int >= 1")
    .Attr("scale: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle query;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &query));
      c->set_output(0, c->MakeShape({c->Dim(query, 1), c->Dim(query, 2), c->Dim(query, 0),
                                     c->Dim(query, 3)}));
      return absl::OkStatus();
    });

// Sizes and data of one call; `keys`/`values` hold each block's [H, B, K_n, D] data.
struct Problem {
  int64_t heads, batch, queries, depth, length;
  float scale;
  const float* query = nullptr;
  const float* content_bias = nullptr;
  const float* position_bias = nullptr;
  const float* relative = nullptr;
  const bool* mask = nullptr;
  std::vector<const float*> keys, values;
  std::vector<int64_t> block_start, block_size;
  float* out = nullptr;
};

// Compiled for AVX-512, AVX2 + FMA and baseline x86-64; the loader runs the best the CPU has.
// TWM_SINGLE_TARGET builds only the -march target (block_attention.build(march=...)).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(TWM_SINGLE_TARGET)
#define TWM_CPU_CLONES \
  __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define TWM_CPU_CLONES
#endif

// exp(x) for x <= 0 in a form the compiler vectorizes (glibc's expf is a call per element and
// took most of the kernel's time): Cephes' expf polynomial, within 2 ulp of exp; 0 below -87
// (exp(-87) = 1.6e-38), so masked keys (-inf) get exactly 0.
inline float ExpNonPositive(float x) {
  const float clamped = std::max(x, -87.0f);
  const int n = static_cast<int>(clamped * 1.44269504088896341f - 0.5f);  // round(x / ln 2)
  const float whole = static_cast<float>(n);
  const float r = clamped - whole * 0.693359375f + whole * 2.12194440e-4f;  // x - n ln 2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float power = __builtin_bit_cast(float, (n + 127) << 23);  // 2^n
  return x < -87.0f ? 0.0f : (p * r * r + r + 1.0f) * power;
}

// Units [begin, end) of the H * B units (head h, row b): their queries against their keys.
TWM_CPU_CLONES void AttendUnits(const Problem& p, int64_t begin, int64_t end) {
  const int64_t depth = p.depth, length = p.length, queries = p.queries;
  std::vector<float> q_content(depth), q_position(depth), scores(length), acc(depth);
  for (int64_t unit = begin; unit < end; ++unit) {
    const int64_t h = unit / p.batch, b = unit % p.batch;
    for (int64_t i = 0; i < queries; ++i) {
      const float* q_row = p.query + (unit * queries + i) * depth;
      for (int64_t d = 0; d < depth; ++d) {
        q_content[d] = q_row[d] + p.content_bias[h * depth + d];
        q_position[d] = q_row[d] + p.position_bias[h * depth + d];
      }
      const bool* mask_row = p.mask + (b * queries + i) * length;
      float top = -std::numeric_limits<float>::infinity();
      for (size_t n = 0; n < p.keys.size(); ++n) {
        const float* k = p.keys[n] + unit * p.block_size[n] * depth;
        for (int64_t s = 0; s < p.block_size[n]; ++s, k += depth) {
          const int64_t j = p.block_start[n] + s;
          // Key j sits at distance T - Q + i - j from query i: column j + Q - 1 - i.
          const int64_t column = j + queries - 1 - i;
          if (!mask_row[j] || column >= length) {
            scores[j] = -std::numeric_limits<float>::infinity();
            continue;
          }
          const float* r = p.relative + (column * p.heads + h) * depth;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int64_t d = 0; d < depth; ++d) dot += q_content[d] * k[d] + q_position[d] * r[d];
          scores[j] = dot * p.scale;
          top = std::max(top, scores[j]);
        }
      }
      float total = 0.0f;
#pragma omp simd reduction(+ : total)
      for (int64_t j = 0; j < length; ++j) {
        scores[j] = ExpNonPositive(scores[j] - top);
        total += scores[j];
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (size_t n = 0; n < p.values.size(); ++n) {
        const float* v = p.values[n] + unit * p.block_size[n] * depth;
        for (int64_t s = 0; s < p.block_size[n]; ++s, v += depth) {
          const float w = scores[p.block_start[n] + s];
          if (w == 0.0f) continue;
#pragma omp simd
          for (int64_t d = 0; d < depth; ++d) acc[d] += w * v[d];
        }
      }
      float* out_row = p.out + ((b * queries + i) * p.heads + h) * depth;
      const float inverse = 1.0f / total;
      for (int64_t d = 0; d < depth; ++d) out_row[d] = acc[d] * inverse;
    }
  }
}

class BlockAttentionOp : public OpKernel {
 public:
  explicit BlockAttentionOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("scale", &scale_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& query = context->input(0);
    const Tensor& content_bias = context->input(1);
    const Tensor& position_bias = context->input(2);
    const Tensor& relative = context->input(3);
    const Tensor& mask = context->input(4);
    OpInputList keys, values;
    OP_REQUIRES_OK(context, context->input_list("keys", &keys));
    OP_REQUIRES_OK(context, context->input_list("values", &values));
    OP_REQUIRES(context, query.dims() == 4, InvalidArgument("query must be [H, B, Q, D]"));
    const int64_t heads = query.dim_size(0), batch = query.dim_size(1);
    const int64_t queries = query.dim_size(2), depth = query.dim_size(3);
    Problem problem{heads, batch, queries, depth, 0, scale_};
    int64_t& length = problem.length;  // T, summed over the blocks
    for (int n = 0; n < keys.size(); ++n) {
      const Tensor& k = keys[n];
      const Tensor& v = values[n];
      OP_REQUIRES(context,
                  k.dims() == 4 && k.dim_size(0) == heads && k.dim_size(1) == batch &&
                      k.dim_size(3) == depth && v.shape() == k.shape(),
                  InvalidArgument("keys/values block ", n, " must be [H, B, K, D] like query, got ",
                                  k.shape().DebugString(), " and ", v.shape().DebugString()));
      problem.keys.push_back(k.flat<float>().data());
      problem.values.push_back(v.flat<float>().data());
      problem.block_start.push_back(length);
      problem.block_size.push_back(k.dim_size(2));
      length += k.dim_size(2);
    }
    OP_REQUIRES(context,
                content_bias.shape() == TensorShape({heads, depth}) &&
                    position_bias.shape() == content_bias.shape(),
                InvalidArgument("content_bias and position_bias must be [H, D], got ",
                                content_bias.shape().DebugString(), " and ",
                                position_bias.shape().DebugString()));
    OP_REQUIRES(context, relative.shape() == TensorShape({length, heads, depth}),
                InvalidArgument("relative must be [T, H, D] with T = ", length, ", got ",
                                relative.shape().DebugString()));
    OP_REQUIRES(context, mask.shape() == TensorShape({batch, queries, length}),
                InvalidArgument("mask must be [B, Q, T], got ", mask.shape().DebugString()));
    Tensor* context_out = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, TensorShape({batch, queries, heads, depth}), &context_out));

    problem.query = query.flat<float>().data();
    problem.content_bias = content_bias.flat<float>().data();
    problem.position_bias = position_bias.flat<float>().data();
    problem.relative = relative.flat<float>().data();
    problem.mask = mask.flat<bool>().data();
    problem.out = context_out->flat<float>().data();
    const auto& workers = *context->device()->tensorflow_cpu_worker_threads();
    const int64_t cost = 6 * queries * length * depth;  // multiply-adds per unit, roughly
    auto work = [&problem](int64_t begin, int64_t end) { AttendUnits(problem, begin, end); };
    ::tensorflow::Shard(workers.num_threads, workers.workers, heads * batch, cost, work);
  }

 private:
  float scale_;
};

REGISTER_KERNEL_BUILDER(Name("TwmBlockAttention").Device(::tensorflow::DEVICE_CPU),
                        BlockAttentionOp);

}  // namespace
}  // namespace twm
