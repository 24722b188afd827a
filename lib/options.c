/* vfkit option-list splitting (spec 2.3) and Go-compatible number parsing. */
#include <errno.h>
#include <kvkit/cmdline.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kv_free_strv(char **v, int n)
{
	if (!v)
		return;
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int push(char ***v, int *n, const char *s, size_t len)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return -1;
	*v = nv;
	nv[*n] = strndup(s, len);
	if (!nv[*n])
		return -1;
	(*n)++;
	return 0;
}

/* Quote-aware: a comma outside quotes ends an element; quotes stay in the
 * element; an element both starting and ending with '"' loses all outer
 * quotes. Plain: split at every comma. Empty elements are skipped. */
int kv_split_options(const char *s, bool quote_aware, char ***out, char *err, size_t errlen)
{
	char **v = NULL;
	int n = 0;
	size_t start = 0, len = strlen(s);
	bool quoted = false;

	*out = NULL;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && quote_aware && s[i] == '"') {
			quoted = !quoted;
			continue;
		}
		if (i < len && (s[i] != ',' || quoted))
			continue;
		const char *e = s + start;
		size_t el = i - start;
		if (quote_aware && el >= 2 && e[0] == '"' && e[el - 1] == '"') {
			while (el && *e == '"') {
				e++;
				el--;
			}
			while (el && e[el - 1] == '"')
				el--;
		}
		if (el && push(&v, &n, e, el) < 0) {
			kv_free_strv(v, n);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		start = i + 1;
	}
	if (quoted) {
		kv_free_strv(v, n);
		snprintf(err, errlen, "mismatched \"");
		return -1;
	}
	*out = v;
	return n;
}

/* strconv.ParseUint(s, 0, bits): 0x/0o/0b prefixes, a leading 0 is octal,
 * underscores only between digits with a prefix. */
int kv_parse_uint(const char *s, unsigned bits, uint64_t *out, char *reason, size_t reasonlen)
{
	const char *p = s;
	unsigned base = 10;
	bool prefixed = false, any = false, last_us = false;
	uint64_t v = 0, max = bits >= 64 ? UINT64_MAX : ((1ULL << bits) - 1);

	if (!*s)
		goto syntax;
	if (p[0] == '0' && p[1]) {
		char c = p[1] | 0x20;
		if (c == 'x') { base = 16; p += 2; prefixed = true; }
		else if (c == 'o') { base = 8; p += 2; prefixed = true; }
		else if (c == 'b') { base = 2; p += 2; prefixed = true; }
		else { base = 8; p += 1; prefixed = true; any = true; }
	}
	for (; *p; p++) {
		unsigned d;
		if (*p == '_') {
			if (!prefixed || last_us)
				goto syntax;
			last_us = true;
			continue;
		}
		last_us = false;
		if (*p >= '0' && *p <= '9') d = *p - '0';
		else if ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') d = (*p | 0x20) - 'a' + 10;
		else goto syntax;
		if (d >= base)
			goto syntax;
		any = true;
		if (v > (max - d) / base) {
			snprintf(reason, reasonlen, "strconv.ParseUint: parsing \"%s\": value out of range", s);
			return -1;
		}
		v = v * base + d;
	}
	if (!any || last_us)
		goto syntax;
	*out = v;
	return 0;
syntax:
	snprintf(reason, reasonlen, "strconv.ParseUint: parsing \"%s\": invalid syntax", s);
	return -1;
}
