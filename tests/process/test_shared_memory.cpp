// SharedMemory: named and anonymous segments shared with child processes; names, ownership, no leaks.
#include "weft/process/process.hpp"
#include "weft/process/shared_memory.hpp"

#include "support.hpp"

#include <gtest/gtest.h>
#include <dirent.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>

namespace {

using weft::process::Process;
using weft::process::SharedMemory;

using weft::test::kLong;

using weft::test::shm_entries;
bool exists(const std::string& name) { return ::access(("/dev/shm/" + name).c_str(), F_OK) == 0; }

// The child checks what the parent wrote and answers in the same segment.
void answer_by_name(std::string name) {
  SharedMemory m = SharedMemory::attach(name);
  auto* p = static_cast<char*>(m.data());
  if (std::strcmp(p, "ping") != 0) ::_exit(2);
  std::strcpy(p + 100, "pong");
}
void answer_in(SharedMemory m) {
  auto* p = static_cast<char*>(m.data());
  if (std::strcmp(p, "ping") != 0) ::_exit(2);
  std::strcpy(p + 100, "pong");
}

class SharedMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override { before_ = shm_entries(); }
  void TearDown() override { EXPECT_EQ(shm_entries(), before_) << "a /dev/shm entry was left behind"; }
  std::set<std::string> before_;
};

TEST_F(SharedMemoryTest, NamedSegmentIsSharedWithAChildByName) {
  SharedMemory m = SharedMemory::create(1 << 16);
  EXPECT_TRUE(m.owner());
  EXPECT_TRUE(exists(m.name()));
  std::strcpy(static_cast<char*>(m.data()), "ping");
  Process p(&answer_by_name, m.name());
  ASSERT_TRUE(p.join(kLong));
  ASSERT_EQ(p.exitcode(), 0);
  EXPECT_STREQ(static_cast<char*>(m.data()) + 100, "pong");
}

TEST_F(SharedMemoryTest, SegmentsTravelAsProcessArgumentsNamedOrAnonymous) {
  for (bool named : {true, false}) {
    SharedMemory m = named ? SharedMemory::create(4096) : SharedMemory::anonymous(4096);
    std::strcpy(static_cast<char*>(m.data()), "ping");
    Process p(&answer_in, m);
    ASSERT_TRUE(p.join(kLong));
    ASSERT_EQ(p.exitcode(), 0) << (named ? "named" : "anonymous");
    EXPECT_STREQ(static_cast<char*>(m.data()) + 100, "pong");
  }
}

TEST_F(SharedMemoryTest, CreatingATakenNameFailsAndAttachingAMissingOneFails) {
  SharedMemory m = SharedMemory::create(4096);
  try {
    (void)SharedMemory::create(m.name(), 4096);
    FAIL() << "created a segment over an existing one";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EEXIST);
    EXPECT_NE(std::string(e.what()).find(m.name()), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)SharedMemory::attach("weft-no-such-segment-" + std::to_string(::getpid())), std::system_error);
}

TEST_F(SharedMemoryTest, BadNamesAndSizesAreRefused) {
  EXPECT_THROW((void)SharedMemory::create("", 10), std::invalid_argument);
  EXPECT_THROW((void)SharedMemory::create("a/b", 10), std::invalid_argument);
  EXPECT_THROW((void)SharedMemory::create(std::string(201, 'x'), 10), std::invalid_argument);
  EXPECT_THROW((void)SharedMemory::create(0), std::invalid_argument);
  EXPECT_THROW((void)SharedMemory::anonymous(0), std::invalid_argument);
}

TEST_F(SharedMemoryTest, TheCreatorUnlinksUnlessKept) {
  std::string name;
  {
    SharedMemory m = SharedMemory::create(4096);
    name = m.name();
    SharedMemory view = SharedMemory::attach(name);  // an attacher never unlinks
    EXPECT_FALSE(view.owner());
  }
  EXPECT_FALSE(exists(name));
  {
    SharedMemory m = SharedMemory::create(4096);
    name = m.name();
    m.keep();
  }
  EXPECT_TRUE(exists(name));
  SharedMemory again = SharedMemory::attach(name);
  again.unlink();
  again.unlink();  // idempotent
  EXPECT_FALSE(exists(name));
}

TEST_F(SharedMemoryTest, AnAnonymousSegmentCannotTravelOutsideAProcessArgument) {
  SharedMemory m = SharedMemory::anonymous(64);
  EXPECT_THROW((void)weft::process::pack(m), weft::process::SerializationError);
  SharedMemory named = SharedMemory::create(64);
  auto copy = weft::process::unpack<SharedMemory>(weft::process::pack(named));  // by name: attaches
  EXPECT_EQ(copy.name(), named.name());
  EXPECT_FALSE(copy.owner());
}

}  // namespace
