#include "telemetry/span.h"

#include <bit>
#include <cassert>
#include <cstring>
#include <optional>

#include "core/utf8.h"

namespace prescale::telemetry {
namespace {

// Protobuf's wire types (the low 3 bits of a field's key).
enum WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kLength = 2, kFixed32 = 5 };

// Protobuf's binary encoding, written in one pass into one buffer: a nested message's length
// comes before its bytes, so each message's size is computed first (the *_size functions) from
// the same fields its write_* function writes.

std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}

std::size_t key_size(std::uint32_t field) { return varint_size(std::uint64_t{field} << 3); }

// A length-delimited field of `content` bytes: its key, its length and the bytes.
std::size_t length_field_size(std::uint32_t field, std::size_t content) {
  return key_size(field) + varint_size(content) + content;
}

// The bytes `text` takes as UTF-8 (string_field() writes each byte that does not begin a valid
// sequence as U+FFFD, 3 bytes).
std::size_t text_size(std::string_view text) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t k = utf8_sequence_length(text, i);
    n += k == 0 ? 3 : k;
    i += k == 0 ? 1 : k;
  }
  return n;
}

class Writer {
 public:
  explicit Writer(std::size_t size) { out_.reserve(size); }

  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      out_ += static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    out_ += static_cast<char>(v);
  }
  void key(std::uint32_t field, WireType type) { varint(std::uint64_t{field} << 3 | type); }
  void varint_field(std::uint32_t field, std::uint64_t v) {
    key(field, kVarint);
    varint(v);
  }
  // A nested message's key and length; its fields follow.
  void message(std::uint32_t field, std::size_t size) {
    key(field, kLength);
    varint(size);
  }
  template <std::size_t N>
  void bytes_field(std::uint32_t field, const std::array<std::uint8_t, N>& id) {
    message(field, N);
    out_.append(reinterpret_cast<const char*>(id.data()), N);
  }
  // A `string` field: protobuf requires UTF-8, so a byte that does not begin a valid sequence
  // (a raw byte of a request's path, say) is written as U+FFFD; a receiver would otherwise refuse
  // the whole batch.
  void string_field(std::uint32_t field, std::string_view text) {
    message(field, text_size(text));
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t n = utf8_sequence_length(text, i);
      if (n == 0) {
        out_ += "\xEF\xBF\xBD";
        ++i;
      } else {
        out_.append(text.substr(i, n));
        i += n;
      }
    }
  }
  void fixed64_field(std::uint32_t field, std::uint64_t v) {
    key(field, kFixed64);
    for (int i = 0; i < 8; ++i, v >>= 8) out_ += static_cast<char>(v & 0xff);
  }
  void fixed32_field(std::uint32_t field, std::uint32_t v) {
    key(field, kFixed32);
    for (int i = 0; i < 4; ++i, v >>= 8) out_ += static_cast<char>(v & 0xff);
  }
  std::string& text() { return out_; }

 private:
  std::string out_;
};

// common.proto: KeyValue { string key = 1; AnyValue value = 2; } and AnyValue's oneof
// { string_value = 1; bool_value = 2; int_value = 3; double_value = 4; }. A oneof member is
// written even when it holds its type's default.
std::size_t any_value_size(const SpanAttribute::Value& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return length_field_size(1, text_size(*s));
  if (std::holds_alternative<bool>(value)) return key_size(2) + 1;
  if (const auto* i = std::get_if<std::int64_t>(&value)) {
    return key_size(3) + varint_size(static_cast<std::uint64_t>(*i));
  }
  return key_size(4) + 8;
}

std::size_t key_value_size(std::string_view key, const SpanAttribute::Value& value) {
  return length_field_size(1, text_size(key)) + length_field_size(2, any_value_size(value));
}

void write_key_value(Writer& out, std::uint32_t field, std::string_view key,
                     const SpanAttribute::Value& value) {
  out.message(field, key_value_size(key, value));
  out.string_field(1, key);
  out.message(2, any_value_size(value));
  if (const auto* s = std::get_if<std::string>(&value)) {
    out.string_field(1, *s);
  } else if (const auto* b = std::get_if<bool>(&value)) {
    out.varint_field(2, *b ? 1 : 0);
  } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
    out.varint_field(3, static_cast<std::uint64_t>(*i));
  } else {
    out.fixed64_field(4, std::bit_cast<std::uint64_t>(std::get<double>(value)));
  }
}

bool all_zero(const SpanId& id) {
  for (std::uint8_t b : id) {
    if (b != 0) return false;
  }
  return true;
}

// trace.proto's SpanFlags: bit 8 says whether the parent's being remote is known, bit 9 that it
// is; the low 8 bits are the W3C trace flags.
constexpr std::uint32_t kContextHasIsRemote = 0x100;
constexpr std::uint32_t kContextIsRemote = 0x200;

// trace.proto: Span { trace_id = 1; span_id = 2; trace_state = 3; parent_span_id = 4; name = 5;
// kind = 6; start_time_unix_nano = 7 (fixed64); end_time_unix_nano = 8 (fixed64);
// attributes = 9; status = 15; flags = 16 (fixed32) }, Status { message = 2; code = 3; }.
bool has_status_message(const SpanRecord& span) {
  return span.status == SpanStatus::kError && !span.status_message.empty();
}

std::size_t status_size(const SpanRecord& span) {
  return (has_status_message(span) ? length_field_size(2, text_size(span.status_message)) : 0) +
         key_size(3) + varint_size(static_cast<std::uint64_t>(span.status));
}

std::size_t span_size(const SpanRecord& span) {
  std::size_t n = length_field_size(1, 16) + length_field_size(2, 8);
  if (!span.trace_state.empty()) n += length_field_size(3, text_size(span.trace_state));
  if (!all_zero(span.parent_span_id)) n += length_field_size(4, 8);
  n += length_field_size(5, text_size(span.name));
  n += key_size(6) + varint_size(static_cast<std::uint64_t>(span.kind));
  n += 2 * (key_size(7) + 8);
  for (const SpanAttribute& a : span.attributes) {
    n += length_field_size(9, key_value_size(a.key, a.value));
  }
  if (span.status != SpanStatus::kUnset) n += length_field_size(15, status_size(span));
  return n + key_size(16) + 4;
}

void write_span(Writer& out, const SpanRecord& span, std::size_t size) {
  out.message(2, size);  // ScopeSpans.spans
  out.bytes_field(1, span.context.trace_id);
  out.bytes_field(2, span.context.span_id);
  if (!span.trace_state.empty()) out.string_field(3, span.trace_state);
  if (!all_zero(span.parent_span_id)) out.bytes_field(4, span.parent_span_id);
  out.string_field(5, span.name);
  out.varint_field(6, static_cast<std::uint64_t>(span.kind));
  out.fixed64_field(7, span.start_unix_nano);
  out.fixed64_field(8, span.end_unix_nano);
  for (const SpanAttribute& a : span.attributes) write_key_value(out, 9, a.key, a.value);
  if (span.status != SpanStatus::kUnset) {
    out.message(15, status_size(span));
    if (has_status_message(span)) out.string_field(2, span.status_message);
    out.varint_field(3, static_cast<std::uint64_t>(span.status));
  }
  std::uint32_t flags = span.context.flags | kContextHasIsRemote;
  if (span.parent_remote) flags |= kContextIsRemote;
  out.fixed32_field(16, flags);
}

// Reads a protobuf message's fields one by one; stops (done()) at the end or at anything
// malformed (failed()).
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  // The next field's number and wire type, or nullopt at the end or on a malformed key.
  std::optional<std::pair<std::uint32_t, std::uint32_t>> next() {
    if (in_.empty()) return std::nullopt;
    const auto k = varint();
    if (!k) return std::nullopt;
    return std::pair{static_cast<std::uint32_t>(*k >> 3), static_cast<std::uint32_t>(*k & 7)};
  }
  std::optional<std::uint64_t> varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64 && !in_.empty(); shift += 7) {
      const auto b = static_cast<std::uint8_t>(in_.front());
      in_.remove_prefix(1);
      v |= std::uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return v;
    }
    failed_ = true;
    return std::nullopt;
  }
  std::optional<std::string_view> length_delimited() {
    const auto n = varint();
    if (!n || *n > in_.size()) {
      failed_ = true;
      return std::nullopt;
    }
    std::string_view v = in_.substr(0, *n);
    in_.remove_prefix(*n);
    return v;
  }
  // Skips a field of `type` that is not wanted; false when it cannot.
  bool skip(std::uint32_t type) {
    switch (type) {
      case kVarint:
        return varint().has_value();
      case kLength:
        return length_delimited().has_value();
      case kFixed64:
      case kFixed32: {
        const std::size_t n = type == kFixed64 ? 8 : 4;
        if (in_.size() < n) {
          failed_ = true;
          return false;
        }
        in_.remove_prefix(n);
        return true;
      }
      default:
        return false;
    }
  }
  bool failed() const { return failed_; }

 private:
  std::string_view in_;
  bool failed_ = false;
};

}  // namespace

std::string encode_export_request(const ResourceAttributes& resource, std::string_view scope_name,
                                  std::string_view scope_version,
                                  const std::vector<SpanRecord>& spans) {
  // resource.proto: Resource { attributes = 1; }
  std::size_t resource_size = 0;
  for (const auto& [k, v] : resource) {
    resource_size += length_field_size(1, key_value_size(k, SpanAttribute::Value(v)));
  }
  // common.proto: InstrumentationScope { name = 1; version = 2; }
  const std::size_t scope_size =
      length_field_size(1, text_size(scope_name)) +
      (scope_version.empty() ? 0 : length_field_size(2, text_size(scope_version)));
  // trace.proto: ScopeSpans { scope = 1; spans = 2; }
  std::vector<std::size_t> span_sizes;
  span_sizes.reserve(spans.size());
  std::size_t scope_spans_size = length_field_size(1, scope_size);
  for (const SpanRecord& span : spans) {
    span_sizes.push_back(span_size(span));
    scope_spans_size += length_field_size(2, span_sizes.back());
  }
  // trace.proto: ResourceSpans { resource = 1; scope_spans = 2; }
  const std::size_t resource_spans_size =
      length_field_size(1, resource_size) + length_field_size(2, scope_spans_size);

  // trace_service.proto: ExportTraceServiceRequest { resource_spans = 1; }
  Writer out(length_field_size(1, resource_spans_size));
  out.message(1, resource_spans_size);
  out.message(1, resource_size);
  for (const auto& [k, v] : resource) write_key_value(out, 1, k, SpanAttribute::Value(v));
  out.message(2, scope_spans_size);
  out.message(1, scope_size);
  out.string_field(1, scope_name);
  if (!scope_version.empty()) out.string_field(2, scope_version);
  for (std::size_t i = 0; i < spans.size(); ++i) write_span(out, spans[i], span_sizes[i]);
  assert(out.text().size() == length_field_size(1, resource_spans_size));  // sizes as written
  return std::move(out.text());
}

ExportPartialSuccess read_export_response(std::string_view body) {
  // trace_service.proto: ExportTraceServiceResponse { partial_success = 1; },
  // ExportTracePartialSuccess { int64 rejected_spans = 1; string error_message = 2; }
  ExportPartialSuccess result;
  Reader response(body);
  while (const auto field = response.next()) {
    if (field->first != 1 || field->second != kLength) {
      if (!response.skip(field->second)) return {};
      continue;
    }
    const auto partial = response.length_delimited();
    if (!partial) return {};
    Reader p(*partial);
    while (const auto f = p.next()) {
      if (f->first == 1 && f->second == kVarint) {
        const auto v = p.varint();
        if (!v) return {};
        result.rejected_spans = static_cast<std::int64_t>(*v);
      } else if (f->first == 2 && f->second == kLength) {
        const auto v = p.length_delimited();
        if (!v) return {};
        result.error_message.assign(*v);
      } else if (!p.skip(f->second)) {
        return {};
      }
    }
    if (p.failed()) return {};
  }
  if (response.failed()) return {};
  return result;
}

std::string read_rpc_status_message(std::string_view body) {
  // google/rpc/status.proto: Status { int32 code = 1; string message = 2; repeated Any details = 3;
  // }
  Reader status(body);
  std::string message;
  while (const auto field = status.next()) {
    if (field->first == 2 && field->second == kLength) {
      const auto v = status.length_delimited();
      if (!v) return {};
      message.assign(*v);
    } else if (!status.skip(field->second)) {
      return {};
    }
  }
  return status.failed() ? std::string() : message;
}

}  // namespace prescale::telemetry
