// `local_watchdog GROUP PARENT`: run_watchdog() as a program of its own, for the tests of
// PosixLauncher (prescale runs the same as `prescale __watchdog GROUP PARENT`).
#include "worlds/local/process.h"

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  return prescale::local::run_watchdog(argv[1], argv[2]);
}
