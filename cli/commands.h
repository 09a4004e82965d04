// The zerofarm subcommands. Each takes its own arguments (argv[0] is the subcommand name) and
// returns the process exit status; each prints its own --help.
#pragma once

namespace zerofarm::cli {

int TranscodeCommand(int argc, char** argv);
int ValidateCommand(int argc, char** argv);
int SandboxCommand(int argc, char** argv);
int RingCommand(int argc, char** argv);
int NodeCommand(int argc, char** argv);
int ServeCommand(int argc, char** argv);
int ProxyCommand(int argc, char** argv);
int TokenCommand(int argc, char** argv);
int BenchCommand(int argc, char** argv);
int KeyCommand(int argc, char** argv);
int ObjectCommand(int argc, char** argv);
int JobCommand(int argc, char** argv);

}  // namespace zerofarm::cli
