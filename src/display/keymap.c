/* Key code tables: see keymap.h. The USB table follows the HID usage
 * tables (Keyboard/Keypad page, 0x04-0x73 and the modifiers 0xe0-0xe7)
 * as Linux's hid-input maps them. */
#include "keymap.h"
#include <linux/input-event-codes.h>

static const uint16_t usb_keys[0x74] = {
	[0x04] = KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H, KEY_I, KEY_J, KEY_K, KEY_L, KEY_M,
	KEY_N, KEY_O, KEY_P, KEY_Q, KEY_R, KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X, KEY_Y, KEY_Z,
	[0x1e] = KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7, KEY_8, KEY_9, KEY_0,
	[0x28] = KEY_ENTER, KEY_ESC, KEY_BACKSPACE, KEY_TAB, KEY_SPACE, KEY_MINUS, KEY_EQUAL, KEY_LEFTBRACE,
	KEY_RIGHTBRACE, KEY_BACKSLASH, KEY_BACKSLASH /* non-US # */, KEY_SEMICOLON, KEY_APOSTROPHE, KEY_GRAVE,
	KEY_COMMA, KEY_DOT, KEY_SLASH, KEY_CAPSLOCK,
	[0x3a] = KEY_F1, KEY_F2, KEY_F3, KEY_F4, KEY_F5, KEY_F6, KEY_F7, KEY_F8, KEY_F9, KEY_F10, KEY_F11, KEY_F12,
	[0x46] = KEY_SYSRQ, KEY_SCROLLLOCK, KEY_PAUSE, KEY_INSERT, KEY_HOME, KEY_PAGEUP, KEY_DELETE, KEY_END,
	KEY_PAGEDOWN, KEY_RIGHT, KEY_LEFT, KEY_DOWN, KEY_UP,
	[0x53] = KEY_NUMLOCK, KEY_KPSLASH, KEY_KPASTERISK, KEY_KPMINUS, KEY_KPPLUS, KEY_KPENTER, KEY_KP1, KEY_KP2,
	KEY_KP3, KEY_KP4, KEY_KP5, KEY_KP6, KEY_KP7, KEY_KP8, KEY_KP9, KEY_KP0, KEY_KPDOT,
	[0x64] = KEY_102ND, KEY_COMPOSE, KEY_POWER, KEY_KPEQUAL, KEY_F13, KEY_F14, KEY_F15, KEY_F16, KEY_F17, KEY_F18,
	KEY_F19, KEY_F20, KEY_F21, KEY_F22, KEY_F23, KEY_F24,
};

static const uint16_t usb_modifiers[8] = { KEY_LEFTCTRL, KEY_LEFTSHIFT, KEY_LEFTALT, KEY_LEFTMETA,
					   KEY_RIGHTCTRL, KEY_RIGHTSHIFT, KEY_RIGHTALT, KEY_RIGHTMETA };

uint16_t keymap_usb_to_linux(unsigned usage)
{
	if (usage < sizeof(usb_keys) / sizeof(usb_keys[0]))
		return usb_keys[usage];
	if (usage >= 0xe0 && usage <= 0xe7)
		return usb_modifiers[usage - 0xe0];
	return 0;
}

/* Printable ASCII keysyms (their code is the character) on a US layout:
 * the key that types them, shifted or not. */
static const struct {
	char c;
	uint16_t key;
} ascii_keys[] = {
	{ ' ', KEY_SPACE }, { '!', KEY_1 }, { '"', KEY_APOSTROPHE }, { '#', KEY_3 }, { '$', KEY_4 },
	{ '%', KEY_5 }, { '&', KEY_7 }, { '\'', KEY_APOSTROPHE }, { '(', KEY_9 }, { ')', KEY_0 },
	{ '*', KEY_8 }, { '+', KEY_EQUAL }, { ',', KEY_COMMA }, { '-', KEY_MINUS }, { '.', KEY_DOT },
	{ '/', KEY_SLASH }, { ':', KEY_SEMICOLON }, { ';', KEY_SEMICOLON }, { '<', KEY_COMMA },
	{ '=', KEY_EQUAL }, { '>', KEY_DOT }, { '?', KEY_SLASH }, { '@', KEY_2 }, { '[', KEY_LEFTBRACE },
	{ '\\', KEY_BACKSLASH }, { ']', KEY_RIGHTBRACE }, { '^', KEY_6 }, { '_', KEY_MINUS },
	{ '`', KEY_GRAVE }, { '{', KEY_LEFTBRACE }, { '|', KEY_BACKSLASH }, { '}', KEY_RIGHTBRACE },
	{ '~', KEY_GRAVE },
};

/* Keysyms of the function and modifier keys (X11's keysymdef.h). */
static const struct {
	uint32_t sym;
	uint16_t key;
} special_keys[] = {
	{ 0xff08, KEY_BACKSPACE }, { 0xff09, KEY_TAB }, { 0xff0d, KEY_ENTER }, { 0xff13, KEY_PAUSE },
	{ 0xff14, KEY_SCROLLLOCK }, { 0xff15, KEY_SYSRQ }, { 0xff1b, KEY_ESC }, { 0xff50, KEY_HOME },
	{ 0xff51, KEY_LEFT }, { 0xff52, KEY_UP }, { 0xff53, KEY_RIGHT }, { 0xff54, KEY_DOWN }, { 0xff55, KEY_PAGEUP },
	{ 0xff56, KEY_PAGEDOWN }, { 0xff57, KEY_END }, { 0xff63, KEY_INSERT }, { 0xff67, KEY_COMPOSE },
	{ 0xff7f, KEY_NUMLOCK }, { 0xff8d, KEY_KPENTER }, { 0xffaa, KEY_KPASTERISK }, { 0xffab, KEY_KPPLUS },
	{ 0xffad, KEY_KPMINUS }, { 0xffae, KEY_KPDOT }, { 0xffaf, KEY_KPSLASH }, { 0xffb0, KEY_KP0 },
	{ 0xffb1, KEY_KP1 }, { 0xffb2, KEY_KP2 }, { 0xffb3, KEY_KP3 }, { 0xffb4, KEY_KP4 }, { 0xffb5, KEY_KP5 },
	{ 0xffb6, KEY_KP6 }, { 0xffb7, KEY_KP7 }, { 0xffb8, KEY_KP8 }, { 0xffb9, KEY_KP9 }, { 0xffbd, KEY_KPEQUAL },
	{ 0xffe1, KEY_LEFTSHIFT }, { 0xffe2, KEY_RIGHTSHIFT }, { 0xffe3, KEY_LEFTCTRL }, { 0xffe4, KEY_RIGHTCTRL },
	{ 0xffe5, KEY_CAPSLOCK }, { 0xffe7, KEY_LEFTMETA }, { 0xffe8, KEY_RIGHTMETA }, { 0xffe9, KEY_LEFTALT },
	{ 0xffea, KEY_RIGHTALT }, { 0xffeb, KEY_LEFTMETA }, { 0xffec, KEY_RIGHTMETA }, { 0xffff, KEY_DELETE },
};

uint16_t keymap_keysym_to_linux(uint32_t sym)
{
	static const uint16_t letters[26] = { KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H, KEY_I,
					      KEY_J, KEY_K, KEY_L, KEY_M, KEY_N, KEY_O, KEY_P, KEY_Q, KEY_R,
					      KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X, KEY_Y, KEY_Z };
	static const uint16_t digits[10] = { KEY_0, KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7, KEY_8, KEY_9 };
	if (sym >= 'a' && sym <= 'z')
		return letters[sym - 'a'];
	if (sym >= 'A' && sym <= 'Z')
		return letters[sym - 'A'];
	if (sym >= '0' && sym <= '9')
		return digits[sym - '0'];
	if (sym >= 0xffbe && sym <= 0xffc9) /* F1..F12 */
		return sym - 0xffbe < 10 ? KEY_F1 + (sym - 0xffbe) : KEY_F11 + (sym - 0xffbe - 10);
	for (unsigned i = 0; i < sizeof(ascii_keys) / sizeof(ascii_keys[0]); i++)
		if ((uint32_t)(unsigned char)ascii_keys[i].c == sym)
			return ascii_keys[i].key;
	for (unsigned i = 0; i < sizeof(special_keys) / sizeof(special_keys[0]); i++)
		if (special_keys[i].sym == sym)
			return special_keys[i].key;
	return 0;
}
