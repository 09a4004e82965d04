// The farm's CURVE key material (farm_key.h).
#include "zerofarm/storage/farm_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace zerofarm::storage {
namespace {

constexpr std::string_view kHeader = "zerofarm-farm-key 1";

bool IsZ85Key(const std::string& text) {
  if (text.size() != 40) return false;
  uint8_t raw[32];
  return zmq_z85_decode(raw, text.c_str()) != nullptr;
}

// The public key that belongs to a secret key (Z85), or "" when it is not one.
std::string PublicOf(const std::string& secret) {
  char pub[41] = {};
  if (zmq_curve_public(pub, secret.c_str()) != 0) return {};
  return pub;
}

}  // namespace

Result<FarmKey> FarmKey::Generate() {
  char pub[41] = {};
  char sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0)
    return Status::Error(ErrorCode::kUnsupported,
                         std::string("libzmq cannot make CURVE keys: ") + zmq_strerror(errno));
  FarmKey key;
  key.keys_.push_back({pub, sec});
  return key;
}

Result<FarmKey> FarmKey::Parse(std::string_view text) {
  FarmKey key;
  std::istringstream in{std::string(text)};
  std::string line;
  int number = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++number;
    std::istringstream words(line);
    std::string word;
    // A comment is a whole line ('#' is also a Z85 digit, so never cut a key line at one).
    if (!(words >> word) || word[0] == '#') continue;
    auto bad = [&](const std::string& why) {
      return Status::Error(ErrorCode::kInvalidArgument,
                           "farm key line " + std::to_string(number) + ": " + why);
    };
    if (word == "zerofarm-farm-key") {
      std::string version;
      words >> version;
      if (version != "1") return bad("unsupported version '" + version + "' (this reads 1)");
      header = true;
      continue;
    }
    if (word != "key") return bad("expected \"key PUBLIC SECRET\", got '" + word + "'");
    CurveKeyPair pair;
    std::string extra;
    if (!(words >> pair.public_key >> pair.secret_key) || (words >> extra))
      return bad("expected \"key PUBLIC SECRET\"");
    if (!IsZ85Key(pair.public_key) || !IsZ85Key(pair.secret_key))
      return bad("keys are 40 Z85 characters");
    if (PublicOf(pair.secret_key) != pair.public_key)
      return bad("the public key does not belong to the secret key");
    bool seen = false;
    for (const auto& k : key.keys_) seen |= k.public_key == pair.public_key;
    if (!seen) key.keys_.push_back(std::move(pair));
  }
  if (!header)
    return Status::Error(ErrorCode::kInvalidArgument, "not a farm key file (no header line)");
  if (key.keys_.empty())
    return Status::Error(ErrorCode::kInvalidArgument, "the farm key file has no key");
  return key;
}

Result<FarmKey> FarmKey::Load(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("stat " + path, errno);
  if (st.st_mode & 077)
    return Status::Error(ErrorCode::kInsecureKeyFile,
                         path + " may be read by others than its owner (chmod 600 " + path + ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError("open " + path, errno);
  std::ostringstream text;
  text << in.rdbuf();
  auto key = Parse(text.str());
  if (!key.ok()) return key.status().WithContext(path);
  return key;
}

std::string FarmKey::ToText() const {
  std::string out =
      "# zerofarm farm key: CURVE key material for every node and proxy of one farm.\n"
      "# Keep it secret (mode 0600): whoever holds it can join the farm.\n";
  out += std::string(kHeader) + "\n";
  for (const auto& k : keys_) out += "key " + k.public_key + " " + k.secret_key + "\n";
  return out;
}

Status FarmKey::Save(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError("create " + tmp, errno);
  const std::string text = ToText();
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ErrnoError("write " + tmp, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return ErrnoError("fsync " + tmp, err);
  }
  ::close(fd);
  // link() refuses an existing target: a key file is never overwritten by accident.
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    if (err == EEXIST)
      return Status::Error(ErrorCode::kAlreadyExists,
                           path + " exists (a farm key is never overwritten)");
    return ErrnoError("link " + path, err);
  }
  ::unlink(tmp.c_str());
  return Status::Ok();
}

bool FarmKey::Admits(std::string_view public_key_z85) const {
  for (const auto& k : keys_)
    if (k.public_key == public_key_z85) return true;
  return false;
}

}  // namespace zerofarm::storage
