/* Guest-physical memory map of a kvkit x86 VM. */
#ifndef KVKIT_LAYOUT_H
#define KVKIT_LAYOUT_H

#define GDT_ADDR 0x500ULL
#define IDT_ADDR 0x520ULL
#define BOOT_STACK 0x8ff0ULL
#define ZERO_PAGE_ADDR 0x7000ULL
#define PVH_START_INFO 0x6000ULL
#define PML4_ADDR 0x9000ULL
#define PDPT_ADDR 0xa000ULL
#define PD_ADDR 0xb000ULL /* four pages: identity map of the first 4 GiB */
#define CMDLINE_ADDR 0x20000ULL
#define CMDLINE_MAX 0x10000ULL
#define EBDA_START 0x9fc00ULL
#define ACPI_TABLES_ADDR 0xe0000ULL /* RSDP found here by the legacy scan too */
#define ACPI_TABLES_SIZE 0x10000ULL
#define SMBIOS_ADDR 0xf0000ULL /* the F segment, where Linux's DMI scan looks */
#define SMBIOS_SIZE 0xf000ULL  /* up to the reset vector's page */
#define HIGH_RAM_START 0x100000ULL   /* kernel loaded here */

#define MMIO_HOLE_START 0xc0000000ULL /* RAM stops here below 4 GiB */
#define PCI_MMIO_START 0xc0000000ULL  /* 32-bit BAR window, up to where */
#define PCI_MMIO_SIZE 0x3c000000ULL   /* OVMF's i440FX window ends (0xfc000000) */
#define PCI_MMIO64_ALIGN (1ULL << 30) /* 64-bit BAR window: above RAM, from here */
#define PCI_ECAM_START 0xfc000000ULL  /* above that window, for UEFI boot too */
#define PCI_ECAM_SIZE 0x100000ULL     /* bus 0 only */
#define IOAPIC_ADDR 0xfec00000ULL
#define FLASH_TOP 0x100000000ULL       /* UEFI firmware: code, variables below it */
#define LAPIC_ADDR 0xfee00000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define KVM_TSS_ADDR 0xfeffd000ULL
#define RAM_ABOVE_4G 0x100000000ULL

/* Port I/O */
#define PORT_DEBUG 0x80
#define PORT_I8042_DATA 0x60
#define PORT_I8042_CMD 0x64
#define PORT_COM1 0x3f8
#define PORT_ACPI_SLEEP_CTL 0x3c0
#define PORT_ACPI_SLEEP_STS 0x3c1
#define PORT_ACPI_GED 0x3c4
#define PORT_RESET_CF9 0xcf9
#define PORT_PCI_CONF_ADDR 0xcf8
#define PORT_PCI_CONF_DATA 0xcfc

/* Legacy IRQs (IOAPIC pins) */
#define IRQ_COM1 4
#define IRQ_GED 5
#define GSI_MSI_BASE 24

#endif
