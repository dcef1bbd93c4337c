#include "model/onednn_product.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#if CLEAVE_HAS_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <tuple>

namespace cleave {

bool ProductShape::operator<(const ProductShape& o) const {
  return std::tie(m, k, n, ldc, b_rows_are_columns, operands, accumulate) <
         std::tie(o.m, o.k, o.n, o.ldc, o.b_rows_are_columns, o.operands, o.accumulate);
}

std::string describe(const ProductShape& s) {
  return "[" + std::to_string(s.m) + ", " + std::to_string(s.k) + "] x [" + std::to_string(s.k) + ", " +
         std::to_string(s.n) + "]";
}

namespace {

const char* product_name(ProductOperands operands) {
  return operands == ProductOperands::s8 ? "int8 product" : "bf16 product";
}

#if CLEAVE_HAS_ONEDNN
dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Product {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul primitive;
  int64_t scratch_bytes = 0;
};

// Primitives by shape. oneDNN has its own cache, but creating a primitive
// descriptor costs tens of microseconds per call; shapes repeat every step.
// The scratchpad is the caller's, so one primitive may run on several
// threads at once (simulated fleets train sites concurrently).
std::shared_ptr<const Product> product_for(const ProductShape& s) {
  static std::mutex mutex;
  static std::map<ProductShape, std::shared_ptr<const Product>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(s);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 256) cache.clear();  // generation walks many lengths; shapes are cheap to rebuild
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  const dt operand = s.operands == ProductOperands::s8 ? dt::s8 : dt::bf16;
  const dnnl::memory::desc src({s.m, s.k}, operand, dims{s.k, 1});
  const dnnl::memory::desc weights({s.k, s.n}, operand, s.b_rows_are_columns ? dims{1, s.k} : dims{s.n, 1});
  const dnnl::memory::desc dst({s.m, s.n}, dt::f32, dims{s.ldc, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (s.accumulate) {
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    attr.set_post_ops(sum);
  }
  auto product = std::make_shared<Product>();
  product->pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), attr, cpu_engine());
  product->primitive = dnnl::matmul(product->pd);
  product->scratch_bytes = static_cast<int64_t>(product->pd.scratchpad_desc().get_size());
  cache.emplace(s, product);
  return product;
}
#endif

}  // namespace

void run_onednn_product(const ProductShape& shape, const void* a, const void* b, float* out) {
#if CLEAVE_HAS_ONEDNN
  // named in LibTorch's profiler (bench/op_profile.py), like an ATen op
  RECORD_FUNCTION(shape.operands == ProductOperands::s8 ? "cleave::int8_product" : "cleave::bf16_product",
                  std::vector<c10::IValue>());
  try {
    const std::shared_ptr<const Product> product = product_for(shape);
    dnnl::engine& engine = cpu_engine();
    dnnl::stream stream(engine);
    dnnl::memory src(product->pd.src_desc(), engine, const_cast<void*>(a));
    dnnl::memory weights(product->pd.weights_desc(), engine, const_cast<void*>(b));
    dnnl::memory dst(product->pd.dst_desc(), engine, out);
    at::Tensor scratch = at::empty({std::max<int64_t>(product->scratch_bytes, 1)}, at::kByte);
    dnnl::memory scratchpad(product->pd.scratchpad_desc(), engine, scratch.data_ptr());
    product->primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                        {DNNL_ARG_WEIGHTS, weights},
                                        {DNNL_ARG_DST, dst},
                                        {DNNL_ARG_SCRATCHPAD, scratchpad}});
    stream.wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string(product_name(shape.operands)) + " " + describe(shape) +
                             " failed in oneDNN: " + e.what());
  }
#else
  (void)a, (void)b, (void)out;
  throw std::runtime_error(std::string(product_name(shape.operands)) + " " + describe(shape) +
                           ": this build has no oneDNN; install libdnnl-dev (scripts/setup.sh does) and rebuild");
#endif
}

void check_product_out(const at::Tensor& out, int64_t m, int64_t n, ProductOperands operands) {
  if (out.scalar_type() != at::kFloat || out.dim() != 2 || out.size(0) != m || out.size(1) != n ||
      out.stride(1) != 1 || out.stride(0) < n || !out.device().is_cpu()) {
    throw std::invalid_argument(std::string(product_name(operands)) + ": out must be a CPU float [" +
                                std::to_string(m) + ", " + std::to_string(n) + "] with unit column stride");
  }
}

bool onednn_products_built() {
#if CLEAVE_HAS_ONEDNN
  return true;
#else
  return false;
#endif
}

}  // namespace cleave
