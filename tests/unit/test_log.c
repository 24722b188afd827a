/* Log lines: guest text (firmware lines, agent answers) must not carry
 * terminal escape sequences to the user's terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>
#include "../../src/util/log.h"

static void control_bytes_escaped(void **s)
{
	(void)s;
	int p[2], saved = dup(STDERR_FILENO);
	assert_int_equal(pipe(p), 0);
	dup2(p[1], STDERR_FILENO);
	log_init(LOG_INFO);
	log_info("guest: \x1b[2Jgone\r\x07\x7f \"q\" a\tb");
	dup2(saved, STDERR_FILENO);
	close(p[1]);
	char buf[512] = { 0 };
	assert_true(read(p[0], buf, sizeof(buf) - 1) > 0);
	close(p[0]);
	assert_non_null(strstr(buf, "msg=\"guest: \\x1b[2Jgone\\x0d\\x07\\x7f \\\"q\\\" a\\tb\"\n"));
	for (const char *c = buf; *c; c++)
		assert_true((unsigned char)*c >= 0x20 || *c == '\n');
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(control_bytes_escaped) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
