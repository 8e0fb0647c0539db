#pragma once
// A thin wall around libsentencepiece. Debian's sentencepiece headers declare
// `namespace absl { using std::string_view; }`, which collides with Debian's
// Abseil (whose absl::string_view is its own class), so no translation unit may
// include both. This header uses std types only; sentencepiece_bridge.cc is the
// one file that includes sentencepiece, and it includes no Abseil.
//
// Thread safety: SpmModel's const methods may be called from many threads
// (sentencepiece encoding/decoding is const and reentrant).
// Failure: functions return false and set *error to sentencepiece's message.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mla::spm {

class SpmModel {
 public:
  // Parses a serialized ModelProto (the bytes of a `.model` file).
  static std::unique_ptr<SpmModel> FromSerialized(const std::string& bytes, std::string* error);
  ~SpmModel();
  SpmModel(const SpmModel&) = delete;
  SpmModel& operator=(const SpmModel&) = delete;

  bool Encode(const char* text, size_t size, std::vector<int>* ids, std::string* error) const;
  bool Decode(const std::vector<int>& ids, std::string* text, std::string* error) const;
  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;
  std::string IdToPiece(int id) const;

 private:
  struct Impl;
  explicit SpmModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Trains a model with sentencepiece's trainer. `options` are trainer flags
// (name -> value, as sentencepiece's --flag=value); `next_sentence` yields the
// training sentences one by one and returns false when done; `seed` seeds
// sentencepiece's internal generator. On success
// *model_bytes holds the serialized model.
bool Train(const std::map<std::string, std::string>& options,
           const std::function<bool(std::string*)>& next_sentence, unsigned seed,
           std::string* model_bytes,
           std::string* error);

}  // namespace mla::spm
