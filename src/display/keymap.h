/* Key codes: what a window or a VNC client reports, as the Linux input
 * key codes (KEY_*) a virtio keyboard sends. */
#ifndef KVKIT_DISPLAY_KEYMAP_H
#define KVKIT_DISPLAY_KEYMAP_H
#include <stdint.h>

/* A USB HID keyboard usage (page 7; SDL's scancodes are these) to its
 * Linux key code; 0 for a usage with no key. */
uint16_t keymap_usb_to_linux(unsigned usage);

/* An X11 keysym (what RFB's KeyEvent carries) to the Linux key code of
 * the key that types it on a US keyboard; 0 for a keysym no key types.
 * Shifted symbols ('A', '!') give their key: the client sends the shift
 * key's own events around them. */
uint16_t keymap_keysym_to_linux(uint32_t keysym);

#endif
