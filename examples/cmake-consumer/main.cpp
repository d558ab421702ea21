// Smallest possible diffbio consumer: proves that the headers are found and usable.
#include <diffbio/config.hpp>

#include <cstdio>

int main() {
  std::printf("diffbio %d.%d.%d\n", DIFFBIO_VERSION_MAJOR, DIFFBIO_VERSION_MINOR,
              DIFFBIO_VERSION_PATCH);
  return 0;
}
