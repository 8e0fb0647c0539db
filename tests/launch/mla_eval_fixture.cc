// Writes the fixture the mla-eval tests read (run once by ctest as the
// `eval_fixture` setup, under mpirun -np 1 because the checkpoint writer is
// collective): a tokenizer trained on 400 generated stories, a validation
// shard, an mla_rope model with random weights (GPT-2 init scaled ×10 so its
// logits are far from uniform) saved as a checkpoint with that tokenizer, and
// a prompts file with good and bad lines.
//   eval_write_fixture DIR
#include <mpi.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "checkpoint/writer.h"
#include "glog/logging.h"
#include "layers/cpu/cpu_kernels.h"
#include "runtime/data/story_generator.h"
#include "runtime/data/tokenize_corpus.h"
#include "runtime/data/tokenizer.h"
#include "runtime/gpt_model.h"
#include "runtime/model_checkpoint.h"
#include "tests/runtime/model_test_util.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  google::InitGoogleLogging(argv[0]);
  CHECK_EQ(argc, 2) << "usage: eval_write_fixture DIR";
  using namespace mla;
  const std::string dir = argv[1];
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto stories = GenerateStories(400, 3, nullptr);
  CHECK(stories.ok()) << stories.status();
  TokenizerTrainOptions topt;
  topt.vocab_size = 400;
  auto tok = TrainTokenizer(*stories, topt);
  CHECK(tok.ok()) << tok.status();
  TokenizeOptions sopt;
  sopt.val_fraction = 0.1;
  auto rep = TokenizeCorpus(*stories, *tok, dir + "/train.bin", dir + "/val.bin", sopt);
  CHECK(rep.ok()) << rep.status();

  const ModelConfig cfg = testing::MakeConfig(
      AttentionKind::kMlaRope, {.vocab_size = tok->vocab_size(), .context_length = 64,
                                .n_layer = 2, .d_model = 32, .n_head = 4, .kv_rank = 16,
                                .rope_dim = 4});
  CpuKernels kernels;
  auto model = GptModel::Create(cfg, &kernels);
  CHECK(model.ok()) << model.status();
  (*model)->InitParameters(7);
  for (const ParamSpec& s : (*model)->layout().params)
    if (s.init == ParamSpec::Init::kNormal)
      for (int64_t i = 0; i < s.numel; ++i) (*model)->params()[s.offset + i] *= 10.0f;
  const ParameterLayout& layout = (*model)->layout();
  std::vector<float> packed, zeros(static_cast<size_t>(layout.packed_total), 0.0f);
  ckpt::CheckpointState state;
  state.header.step = 5;
  state.config = ModelConfigEntries(cfg);
  state.layout = TensorSpecs(layout);
  state.params =
      PackedSlice(layout, 0, absl::MakeConstSpan((*model)->params(), layout.total), &packed);
  state.adam_m = {0, zeros};
  state.adam_v = {0, zeros};
  state.tokenizer_model = tok->model_bytes();
  ckpt::SaveOptions save;
  save.dir = dir + "/run";
  auto path = ckpt::SaveCheckpoint(MPI_COMM_WORLD, state, save);
  CHECK(path.ok()) << path.status();

  std::ofstream p(dir + "/prompts.jsonl");
  p << "{\"id\": \"a\", \"prompt\": \"Once upon a time, there was a little girl named Lily.\"}\n"
    << "{\"prompt\": \"Tom and his dog went to the park.\", \"max_new_tokens\": 5}\n"
    << "\n"
    << "{\"prompt\": \"broken json\"\n"
    << "{\"prompt\": \"   \"}\n"
    << "{\"prompt\": \"" << std::string(400, 'z') << " " << std::string(300, 'q') << "\"}\n"
    << "{\"prompt\": \"The sun was hot.\", \"colour\": 3}\n"
    << "{\"prompt\": \"A cat sat.\", \"max_new_tokens\": 64}\n"
    << "{\"id\": 7, \"prompt\": \"One day, a small bird found a shiny stone.\", \"seed\": 3}\n";
  std::printf("fixture written to %s (%s)\n", dir.c_str(), path->c_str());
  MPI_Finalize();
  return 0;
}
