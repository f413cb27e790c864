// Figures in the docs come from a command the doc names (issue 13, item 8: a throughput figure had drifted 10x
// from what the code did, and nothing said where it came from). Every paragraph or table row of docs/*.md,
// README.md and bench/README.md that says "measured" must name what measured it: a command or file under
// bench/, tests/ or scripts/, or a test (Suite.Name), in backticks; or say it was a run "by hand" and at which
// commit, so a reader knows to re-measure it. "not measured" needs nothing.
#include <dirent.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ferry {
namespace {

std::vector<std::string> DocFiles() {
  std::vector<std::string> files = {std::string(FERRY_SOURCE_DIR) + "/README.md",
                                    std::string(FERRY_SOURCE_DIR) + "/bench/README.md"};
  const std::string dir = std::string(FERRY_SOURCE_DIR) + "/docs";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name.size() > 3 && name.compare(name.size() - 3, 3, ".md") == 0) files.push_back(dir + "/" + name);
    }
    closedir(d);
  }
  return files;
}

// Paragraphs (blank-line separated); each table row and list item on its own.
std::vector<std::string> Blocks(const std::string& text) {
  std::vector<std::string> blocks;
  std::string cur;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const bool starts_item = line.rfind("|", 0) == 0 || line.rfind("- ", 0) == 0 || line.rfind("* ", 0) == 0;
    if (line.find_first_not_of(" \t") == std::string::npos || starts_item) {
      if (!cur.empty()) blocks.push_back(cur);
      cur.clear();
    }
    cur += line + "\n";
  }
  if (!cur.empty()) blocks.push_back(cur);
  return blocks;
}

TEST(DocsFigures, EveryMeasuredFigureNamesWhatMeasuredIt) {
  const std::regex measured(R"(\bmeasured\b)", std::regex::icase);
  const std::regex not_measured(R"(\bnot measured\b)", std::regex::icase);
  const std::regex source(R"(`[^`]*(bench/|tests/|scripts/|[A-Z][A-Za-z0-9]+\.[A-Z][A-Za-z0-9]+)[^`]*`)");
  const std::regex by_hand(R"(by\s+hand[^.]*\bcommit\s+[0-9a-f]{7,40}\b)");
  size_t checked = 0;
  for (const std::string& file : DocFiles()) {
    std::ifstream in(file);
    ASSERT_TRUE(in) << file;
    std::stringstream ss;
    ss << in.rdbuf();
    for (const std::string& block : Blocks(ss.str())) {
      std::string rest = std::regex_replace(block, not_measured, "");
      if (!std::regex_search(rest, measured)) continue;
      ++checked;
      EXPECT_TRUE(std::regex_search(block, source) || std::regex_search(block, by_hand))
          << file << ": a figure says \"measured\" but names no command, test or by-hand run with its commit:\n"
          << block;
    }
  }
  EXPECT_GT(checked, 3u) << "the docs lost their measured figures, or this test its way to find them";
}

}  // namespace
}  // namespace ferry
