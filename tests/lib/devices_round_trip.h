/* Test helper: the devices of a configuration, printed as a command line
 * (kv_config_to_argv) and parsed back, must be the same devices; aborts
 * when they are not. The fuzzers of both syntaxes use it. */
#ifndef KVKIT_TESTS_DEVICES_ROUND_TRIP_H
#define KVKIT_TESTS_DEVICES_ROUND_TRIP_H
#include <kvkit/config.h>

void devices_round_trip(const struct kv_config *c);

#endif
