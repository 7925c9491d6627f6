"""Offline stand-in for rules_cc: Bazel 4's built-in rules load it; natives do the work."""
cc_binary = native.cc_binary
cc_library = native.cc_library
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
