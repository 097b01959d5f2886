// gethostname() as a string.
#include "llama2/util/host_name.h"

#include <unistd.h>

namespace llama2 {

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace llama2
