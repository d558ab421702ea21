// The one translation unit that defines Catch2's main(); compiled once into an object
// library and linked into every diffbio_test_<layer> executable.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
