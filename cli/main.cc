// zerofarm: every subcommand of the render farm in one executable.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int, char**);
};

constexpr Command kCommands[] = {
    {"transcode", "run the whole pipeline on this machine: INPUT -> HLS ladder, MP4s, thumbnail",
     &zerofarm::cli::TranscodeCommand},
    {"serve", "all-in-one node: HTTP API + scheduler + embedded store (--data DIR --listen ADDR)",
     &zerofarm::cli::ServeCommand},
    {"token", "token create --data DIR --tenant NAME: print a new bearer token for a tenant",
     &zerofarm::cli::TokenCommand},
    {"bench", "benchmarks against ffmpeg, bwrap, nginx...: tables + JSON",
     &zerofarm::cli::BenchCommand},
    {"ring", "ring build|show: place partitions of the object space on nodes and zones",
     &zerofarm::cli::RingCommand},
    {"proxy", "HTTP API + scheduler for a cluster (--ring RING --data DIR --listen HOST:PORT)",
     &zerofarm::cli::ProxyCommand},
    {"node", "a storage node of a cluster (--data DIR --bind tcp://HOST:PORT --ring RING)",
     &zerofarm::cli::NodeCommand},
    {"key", "key create -o FILE: the farm key (CURVE) every node and proxy takes with --key",
     &zerofarm::cli::KeyCommand},
    {"object", "object put|get|ls|rm: a tenant's objects over the HTTP API (--url, --token)",
     &zerofarm::cli::ObjectCommand},
    {"job", "job run|ls|get|cancel: programs run next to their data (/v1/jobs)",
     &zerofarm::cli::JobCommand},
#ifdef ZEROFARM_HAVE_VALIDATE
    {"validate", "check a static x86-64 program before it may run in the sandbox",
     &zerofarm::cli::ValidateCommand},
    {"sandbox", "run a validated program in the sandbox and print its run report",
     &zerofarm::cli::SandboxCommand},
#endif
};

void Usage(std::FILE* out) {
  std::fputs(
      "usage: zerofarm COMMAND [ARGS]   (zerofarm COMMAND --help for details)\n"
      "       zerofarm --version\n\n"
      "commands:\n",
      out);
  for (const Command& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage(stderr);
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    Usage(stdout);
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::printf("zerofarm %s\n", ZEROFARM_VERSION);
    return 0;
  }
  for (const Command& c : kCommands)
    if (cmd == c.name) return c.run(argc - 1, argv + 1);
  std::fprintf(stderr, "zerofarm: unknown command '%s'\n", cmd.c_str());
  Usage(stderr);
  return 2;
}
