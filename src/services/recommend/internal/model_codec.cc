#include "services/recommend/internal/model_codec.h"

#include <cmath>
#include <cstring>
#include <unordered_set>

namespace prescale::recommend::internal {
namespace {

constexpr char kMagic[8] = {'P', 'R', 'S', 'C', 'R', 'E', 'C', '\0'};
constexpr uint32_t kByteOrderMark = 0x01020304;

class Writer {
 public:
  template <class T>
  void put(const T& v) {
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  template <class T>
  void put_array(const T* data, size_t n) {
    bytes_.append(reinterpret_cast<const char*>(data), n * sizeof(T));
  }
  void put_rows(const SparseRows& rows) {
    put<int64_t>(static_cast<int64_t>(rows.nnz()));
    put_array(rows.offsets.data(), rows.offsets.size());
    for (const ItemWeight& e : rows.entries) {
      put(e.item);
      put(e.weight);
    }
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

}  // namespace

std::string encode_model(const ModelState& s) {
  Writer w;
  w.put_array(kMagic, sizeof kMagic);
  w.put(kModelFormatVersion);
  w.put(kByteOrderMark);
  w.put(static_cast<uint32_t>(s.options.kind));
  w.put<int64_t>(s.users.size());
  w.put<int64_t>(s.items.size());
  w.put_array(s.users.ids().data(), s.users.ids().size());
  w.put_array(s.items.ids().data(), s.items.ids().size());
  w.put_rows(s.user_items);
  switch (s.options.kind) {
    case ModelKind::kAls:
      w.put<int64_t>(s.als.items.cols());
      w.put_array(s.als.users.data(), static_cast<size_t>(s.als.users.size()));
      w.put_array(s.als.items.data(), static_cast<size_t>(s.als.items.size()));
      break;
    case ModelKind::kEase:
      w.put<int64_t>(static_cast<int64_t>(s.ease.items.size()));
      w.put_array(s.ease.items.data(), s.ease.items.size());
      w.put_array(s.ease.b.data(), static_cast<size_t>(s.ease.b.size()));
      break;
    case ModelKind::kItemKnn:
      w.put_rows(s.neighbours);
      break;
    case ModelKind::kTopPop:
      break;
  }
  return w.bytes();
}

namespace {

class Reader {
 public:
  Reader(std::string_view bytes, const std::string& path) : bytes_(bytes), path_(path) {}

  template <class T>
  Result<T> get(std::string_view section) {
    T v;
    if (auto ok = take(section, &v, sizeof v); !ok) return std::unexpected(ok.error());
    return v;
  }
  template <class T>
  Result<void> get_array(std::string_view section, T* out, size_t n) {
    if (n > (bytes_.size() - pos_) / sizeof(T)) return truncated(section, n * sizeof(T));
    return take(section, out, n * sizeof(T));
  }
  Result<SparseRows> get_rows(std::string_view section, int64_t rows, int64_t columns) {
    auto nnz = get<int64_t>(section);
    if (!nnz) return std::unexpected(nnz.error());
    if (*nnz < 0 || static_cast<uint64_t>(*nnz) > bytes_.size()) {
      return fail(section, "entry count " + std::to_string(*nnz) + " out of range");
    }
    SparseRows m;
    m.columns = static_cast<int32_t>(columns);
    m.offsets.resize(static_cast<size_t>(rows) + 1);
    if (auto ok = get_array(section, m.offsets.data(), m.offsets.size()); !ok) {
      return std::unexpected(ok.error());
    }
    if (m.offsets.front() != 0 || m.offsets.back() != *nnz) {
      return fail(section, "row offsets do not span the entries");
    }
    for (size_t r = 1; r < m.offsets.size(); ++r) {
      if (m.offsets[r] < m.offsets[r - 1]) return fail(section, "row offsets decrease");
    }
    m.entries.resize(static_cast<size_t>(*nnz));
    for (ItemWeight& e : m.entries) {
      auto item = get<int32_t>(section);
      if (!item) return std::unexpected(item.error());
      auto weight = get<float>(section);
      if (!weight) return std::unexpected(weight.error());
      if (*item < 0 || *item >= columns) return fail(section, "item index out of range");
      if (!std::isfinite(*weight)) return fail(section, "a weight is not finite");
      e = {*item, *weight};
    }
    return m;
  }
  size_t remaining() const { return bytes_.size() - pos_; }

  std::unexpected<Error> fail(std::string_view section, const std::string& problem) const {
    return make_error(ErrorCode::kInvalidArgument,
                      path_ + ": " + std::string(section) + ": " + problem);
  }

 private:
  Result<void> take(std::string_view section, void* out, size_t n) {
    if (n > bytes_.size() - pos_) return truncated(section, n);
    if (n > 0) std::memcpy(out, bytes_.data() + pos_, n);
    pos_ += n;
    return {};
  }
  std::unexpected<Error> truncated(std::string_view section, size_t wanted) const {
    return fail(section, "the file ends " + std::to_string(bytes_.size() - pos_) + " bytes into " +
                             std::to_string(wanted) + " bytes (truncated)");
  }

  std::string_view bytes_;
  const std::string& path_;
  size_t pos_ = 0;
};

Result<IdIndex> read_ids(Reader& r, std::string_view section, int64_t n) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  if (auto ok = r.get_array(section, ids.data(), ids.size()); !ok) {
    return std::unexpected(ok.error());
  }
  IdIndex index;
  for (int64_t id : ids) {
    if (index.add(id) != index.size() - 1) {
      return r.fail(section, "id " + std::to_string(id) + " appears twice");
    }
  }
  return index;
}

Result<void> read_floats(Reader& r, std::string_view section, float* out, size_t n) {
  if (auto ok = r.get_array(section, out, n); !ok) return ok;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i])) return r.fail(section, "a value is not finite");
  }
  return {};
}

}  // namespace

Result<void> decode_model(std::string_view bytes, const std::string& path, ModelState& s) {
  Reader r(bytes, path);
  char magic[sizeof kMagic];
  if (auto ok = r.get_array("header", magic, sizeof magic); !ok) return ok;
  if (std::memcmp(magic, kMagic, sizeof kMagic) != 0) {
    return r.fail("header", "not a prescale recommend model (bad magic bytes)");
  }
  auto format = r.get<uint32_t>("header");
  if (!format) return std::unexpected(format.error());
  if (*format != kModelFormatVersion) {
    return r.fail("header", "format version " + std::to_string(*format) + ", this build reads " +
                                std::to_string(kModelFormatVersion));
  }
  auto bom = r.get<uint32_t>("header");
  if (!bom) return std::unexpected(bom.error());
  if (*bom != kByteOrderMark) return r.fail("header", "written on a machine of other byte order");
  auto kind = r.get<uint32_t>("header.kind");
  if (!kind) return std::unexpected(kind.error());
  if (*kind != static_cast<uint32_t>(s.options.kind)) {
    return r.fail("header.kind", "model kind " + std::to_string(*kind) +
                                     " differs from the manifest's \"" +
                                     std::string(to_string(s.options.kind)) + "\"");
  }
  auto users = r.get<int64_t>("header.users");
  if (!users) return std::unexpected(users.error());
  auto items = r.get<int64_t>("header.items");
  if (!items) return std::unexpected(items.error());
  const auto limit = static_cast<int64_t>(r.remaining() / sizeof(int64_t));
  if (*users < 0 || *users > limit) return r.fail("header.users", "count out of range");
  if (*items < 0 || *items > limit) return r.fail("header.items", "count out of range");

  auto user_ids = read_ids(r, "user_ids", *users);
  if (!user_ids) return std::unexpected(user_ids.error());
  s.users = std::move(*user_ids);
  auto item_ids = read_ids(r, "item_ids", *items);
  if (!item_ids) return std::unexpected(item_ids.error());
  s.items = std::move(*item_ids);
  auto rows = r.get_rows("interactions", *users, *items);
  if (!rows) return std::unexpected(rows.error());
  s.user_items = std::move(*rows);

  switch (s.options.kind) {
    case ModelKind::kAls: {
      auto f = r.get<int64_t>("als.factors");
      if (!f) return std::unexpected(f.error());
      if (*f != s.options.als.factors) {
        return r.fail("als.factors", std::to_string(*f) + " differs from the manifest's " +
                                         std::to_string(s.options.als.factors));
      }
      s.als.users.resize(*users, *f);
      s.als.items.resize(*items, *f);
      if (auto ok = read_floats(r, "als.user_factors", s.als.users.data(),
                                static_cast<size_t>(s.als.users.size()));
          !ok) {
        return ok;
      }
      if (auto ok = read_floats(r, "als.item_factors", s.als.items.data(),
                                static_cast<size_t>(s.als.items.size()));
          !ok) {
        return ok;
      }
      break;
    }
    case ModelKind::kEase: {
      auto m = r.get<int64_t>("ease.items");
      if (!m) return std::unexpected(m.error());
      if (*m < 0 || *m > *items) return r.fail("ease.items", "count out of range");
      s.ease.items.resize(static_cast<size_t>(*m));
      if (auto ok = r.get_array("ease.items", s.ease.items.data(), s.ease.items.size()); !ok) {
        return ok;
      }
      std::unordered_set<int32_t> seen;
      for (int32_t i : s.ease.items) {
        if (i < 0 || i >= *items || !seen.insert(i).second) {
          return r.fail("ease.items", "item index out of range or repeated");
        }
      }
      s.ease.b.resize(*m, *m);
      if (auto ok =
              read_floats(r, "ease.weights", s.ease.b.data(), static_cast<size_t>(s.ease.b.size()));
          !ok) {
        return ok;
      }
      break;
    }
    case ModelKind::kItemKnn: {
      auto nb = r.get_rows("item_knn.neighbours", *items, *items);
      if (!nb) return std::unexpected(nb.error());
      s.neighbours = std::move(*nb);
      break;
    }
    case ModelKind::kTopPop:
      break;
  }
  if (r.remaining() != 0) {
    return r.fail("end", std::to_string(r.remaining()) + " bytes after the last section");
  }
  return {};
}

}  // namespace prescale::recommend::internal
