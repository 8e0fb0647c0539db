// The mla-data binary on good and bad input: every failure is one message
// naming the file and the problem, with a non-zero exit.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/data/story_generator.h"
#include "tests/runtime/data/data_test_util.h"

extern char** environ;

namespace mla {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs mla-data with `args` (no shell) and captures its output.
Result RunMlaData(const std::vector<std::string>& args) {
  const char* bin_dir = std::getenv("MLA_BINARY_DIR");
  CHECK(bin_dir != nullptr) << "MLA_BINARY_DIR is not set (run through ctest)";
  std::string binary = std::string(bin_dir) + "/tools/mla-data/mla-data";
  std::vector<std::string> argv_s = {binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  int pipe_fds[2];
  CHECK_EQ(::pipe(pipe_fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  pid_t pid;
  int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  CHECK_EQ(rc, 0) << "cannot run " << binary << ": " << std::strerror(rc);
  Result result;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0) result.output.append(buf, n);
  ::close(pipe_fds[0]);
  int status = 0;
  CHECK_EQ(::waitpid(pid, &status, 0), pid);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A failure: exit code 1 (not a crash) and the one-line error naming `path`.
void ExpectCleanFailure(const Result& r, const std::string& path, const std::string& problem) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("mla-data: error: " + path));
  EXPECT_THAT(r.output, HasSubstr(problem));
}

TEST(MlaDataCli, AllBuildsShardsThatInspectAccepts) {
  std::string dir = testing_util::FreshDir();
  Result r = RunMlaData({"all", "--count=400", "--seed=3", "--vocab_size=600", "--out=" + dir});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("400 stories"));
  EXPECT_THAT(r.output, HasSubstr("distinct sentence frames"));
  Result inspect = RunMlaData({"inspect", dir + "/train.bin"});
  EXPECT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_THAT(inspect.output, HasSubstr("checksum OK"));
  EXPECT_THAT(inspect.output, HasSubstr("unigram entropy"));
  EXPECT_THAT(inspect.output, HasSubstr("decoded"));
}

TEST(MlaDataCli, AllReadsATinyStoriesTextFile) {
  // TinyStories' text release: multi-line stories separated by <|endoftext|>.
  auto stories = GenerateStories(300, 8, nullptr);
  ASSERT_TRUE(stories.ok());
  std::string dir = testing_util::FreshDir();
  {
    std::ofstream out(dir + "/TinyStories-valid.txt");
    for (const std::string& s : *stories) out << s << "\n\nThe end.\n<|endoftext|>\n";
  }
  Result r = RunMlaData({"all", "--corpus=" + dir + "/TinyStories-valid.txt",
                         "--vocab_size=500", "--sample_tokens=1000", "--out=" + dir});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("300 stories"));
  EXPECT_THAT(r.output, HasSubstr("checksum OK"));
  EXPECT_THAT(r.output, HasSubstr("\n\nThe end."));  // paragraphs survive into the sample
}

TEST(MlaDataCli, MissingCorpusNamesTheFile) {
  std::string path = testing_util::FreshDir() + "/no_such_corpus.txt";
  ExpectCleanFailure(RunMlaData({"tokenizer", "--corpus=" + path, "--out=" +
                                 testing_util::FreshDir()}),
                     path, "No such file");
}

TEST(MlaDataCli, EmptyCorpusNamesTheFile) {
  std::string path = testing_util::FreshDir() + "/empty.txt";
  std::ofstream(path).close();
  ExpectCleanFailure(RunMlaData({"tokenizer", "--corpus=" + path}), path, "no stories");
}

TEST(MlaDataCli, UnreadableCorpusNamesTheFile) {
  // A directory cannot be read as a corpus, even by root (which ignores modes).
  std::string path = testing_util::FreshDir();
  ExpectCleanFailure(RunMlaData({"tokenizer", "--corpus=" + path}), path, "is a directory");
}

TEST(MlaDataCli, MissingTokenizerModelNamesTheFile) {
  std::string dir = testing_util::FreshDir();
  std::ofstream(dir + "/stories.txt") << "One story.\n";
  ExpectCleanFailure(RunMlaData({"tokenize", "--out=" + dir}), dir + "/tokenizer.model",
                     "No such file");
}

class DamagedShardCli : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testing_util::FreshDir() + "/val.bin";
    testing_util::WriteShard(path_, {1, 2, 3, 4}, 50, 0);
    bytes_ = ReadBytes(path_);
  }
  Result Inspect() {
    std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes_;
    return RunMlaData({"inspect", path_});
  }
  std::string path_, bytes_;
};

TEST_F(DamagedShardCli, BadMagic) {
  bytes_[1] = '?';
  ExpectCleanFailure(Inspect(), path_, "bad magic");
}

TEST_F(DamagedShardCli, BadVersion) {
  bytes_[8] = 2;
  ExpectCleanFailure(Inspect(), path_, "unsupported token shard version 2");
}

TEST_F(DamagedShardCli, Truncated) {
  bytes_.pop_back();
  ExpectCleanFailure(Inspect(), path_, "truncated");
}

TEST_F(DamagedShardCli, ChecksumMismatch) {
  bytes_.back() ^= 0x10;
  ExpectCleanFailure(Inspect(), path_, "checksum mismatch");
}

TEST_F(DamagedShardCli, TokenIdAtOrAboveVocab) {
  bytes_[16] = 3;  // vocab 50 -> 3: tokens 3 and 4 are now out of range
  ExpectCleanFailure(Inspect(), path_, "token id 3 at position 2 is >= vocab size 3");
}

TEST(MlaDataCli, BadGrammarFileNamesFileAndLine) {
  std::string dir = testing_util::FreshDir();
  std::string path = dir + "/mine.grammar";
  std::ofstream(path) << "grammar 1\nsentence s\n  {Hero} ran.\nstory\n  section m\n  say s\n";
  ExpectCleanFailure(RunMlaData({"stories", "--grammar=" + path, "--count=10", "--out=" + dir}),
                     path + ":3", "unknown variable '{Hero}'");
}

TEST(MlaDataCli, UserGrammarFileGeneratesStories) {
  std::string dir = testing_util::FreshDir();
  std::ofstream(dir + "/mine.grammar")
      << "grammar 1\nlist names\n  Ann | Bo | Cy | Di\nsentence s\n  {N} {ran|sat|sang}.\n"
         "story\n  set N = {@names}\n  section m\n  say s\n";
  Result r = RunMlaData({"stories", "--grammar=" + dir + "/mine.grammar", "--count=12",
                         "--context_stories=0", "--out=" + dir});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("12 stories"));
  EXPECT_THAT(r.output, HasSubstr("sentence templates used 1 of 1, distinct sentence frames 3"));
  std::string text = ReadBytes(dir + "/stories.txt");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 12);
}

TEST(MlaDataCli, StoriesV2ReportsContextSensitivityAgainstV1) {
  std::string dir = testing_util::FreshDir();
  Result r = RunMlaData({"stories", "--grammar=v2", "--count=300", "--context_stories=300",
                         "--out=" + dir});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("grammar v2"));
  EXPECT_THAT(r.output, HasSubstr("median"));
  EXPECT_THAT(r.output, HasSubstr("p90"));
  EXPECT_THAT(r.output, HasSubstr("context    sensitivity"));
  EXPECT_THAT(r.output, HasSubstr("v1 (reference)"));
  EXPECT_THAT(r.output, HasSubstr("ratio v2 / v1"));
}

TEST(MlaDataCli, UnknownSubcommandFailsWithUsageHint) {
  Result r = RunMlaData({"frobnicate"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("unknown subcommand 'frobnicate'"));
}

TEST(MlaDataCli, HelpExplainsSubcommandsAndFlags) {
  Result r = RunMlaData({"--help"});
  for (const char* word : {"stories", "tokenizer", "tokenize", "inspect", "--count", "--seed",
                           "--vocab_size", "--val_fraction", "--format", "--threads", "--grammar",
                           "--context_stories"}) {
    EXPECT_THAT(r.output, HasSubstr(word));
  }
  EXPECT_THAT(r.output, Not(HasSubstr("No flags matched")));
}

}  // namespace
}  // namespace mla
