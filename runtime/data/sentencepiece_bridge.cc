// The only file that includes sentencepiece (see sentencepiece_bridge.h for why).
#include "runtime/data/sentencepiece_bridge.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <unordered_map>

namespace mla::spm {

struct SpmModel::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

SpmModel::SpmModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SpmModel::~SpmModel() = default;

std::unique_ptr<SpmModel> SpmModel::FromSerialized(const std::string& bytes, std::string* error) {
  auto impl = std::make_unique<Impl>();
  auto status = impl->processor.LoadFromSerializedProto(bytes);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return std::unique_ptr<SpmModel>(new SpmModel(std::move(impl)));
}

bool SpmModel::Encode(const char* text, size_t size, std::vector<int>* ids,
                      std::string* error) const {
  auto status = impl_->processor.Encode(std::string_view(text, size), ids);
  if (!status.ok()) {
    *error = status.ToString();
    return false;
  }
  return true;
}

bool SpmModel::Decode(const std::vector<int>& ids, std::string* text, std::string* error) const {
  auto status = impl_->processor.Decode(ids, text);
  if (!status.ok()) {
    *error = status.ToString();
    return false;
  }
  return true;
}

int SpmModel::vocab_size() const { return impl_->processor.GetPieceSize(); }
int SpmModel::bos_id() const { return impl_->processor.bos_id(); }
int SpmModel::eos_id() const { return impl_->processor.eos_id(); }
int SpmModel::unk_id() const { return impl_->processor.unk_id(); }
std::string SpmModel::IdToPiece(int id) const { return impl_->processor.IdToPiece(id); }

namespace {

class CallbackIterator : public sentencepiece::SentenceIterator {
 public:
  explicit CallbackIterator(const std::function<bool(std::string*)>& next) : next_(next) {
    Next();
  }
  bool done() const override { return done_; }
  void Next() override { done_ = !next_(&value_); }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::function<bool(std::string*)>& next_;
  std::string value_;
  bool done_ = false;
};

}  // namespace

bool Train(const std::map<std::string, std::string>& options,
           const std::function<bool(std::string*)>& next_sentence, unsigned seed,
           std::string* model_bytes, std::string* error) {
  sentencepiece::SetRandomGeneratorSeed(seed);
  std::unordered_map<std::string, std::string> kwargs(options.begin(), options.end());
  CallbackIterator it(next_sentence);
  auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &it, model_bytes);
  if (!status.ok()) {
    *error = status.ToString();
    return false;
  }
  return true;
}

}  // namespace mla::spm
