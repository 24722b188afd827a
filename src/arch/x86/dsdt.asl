/*
 * kvkit's DSDT, compiled by iasl at build time into dsdt_aml.h.
 * Hardware-reduced ACPI: the power button is a PNP0C0C device notified by a
 * Generic Event Device (ACPI0013) whose interrupt kvkit raises; S5 is entered
 * through the FADT sleep control register. Addresses match layout.h.
 */
DefinitionBlock ("dsdt.aml", "DSDT", 2, "KVKIT ", "KVKITDSD", 1)
{
    Scope (\_SB)
    {
        Device (PCI0)
        {
            Name (_HID, EisaId ("PNP0A08"))
            Name (_CID, EisaId ("PNP0A03"))
            Name (_SEG, Zero)
            Name (_BBN, Zero)
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
                    0x0000, 0x0000, 0x0000, 0x0000, 0x0001)
                IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300)
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
                    0x00000000, 0xC0000000, 0xFBFFFFFF, 0x00000000, 0x3C000000)
                /* 64-bit BARs above RAM: acpi.c writes the window kvkit
                 * chose over these placeholder values ("KVK" + 64) */
                QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite,
                    0x0000000000000000, 0x4B564B6400000000, 0x4B564B64FFFFFFFF, 0x0000000000000000,
                    0x0000000100000000)
            })
        }

        /* ECAM window, so Linux trusts the MCFG table */
        Device (MRES)
        {
            Name (_HID, EisaId ("PNP0C02"))
            Name (_UID, One)
            Name (_CRS, ResourceTemplate ()
            {
                Memory32Fixed (ReadOnly, 0xFC000000, 0x00100000)
            })
        }

        /* COM1. Hardware-reduced ACPI gives Linux no legacy PIC, so ISA
         * IRQs are only mapped for devices ACPI describes. */
        Device (COM1)
        {
            Name (_HID, EisaId ("PNP0501"))
            Name (_UID, One)
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x03F8, 0x03F8, 0x00, 0x08)
                IRQNoFlags () { 4 }
            })
        }

        Device (PWRB)
        {
            Name (_HID, EisaId ("PNP0C0C"))
            Name (_UID, Zero)
        }

        Device (GED0)
        {
            Name (_HID, "ACPI0013")
            Name (_UID, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 5 }
            })
            OperationRegion (GDST, SystemIO, 0x3C4, One)
            Field (GDST, ByteAcc, NoLock, WriteAsZeros)
            {
                GDAT, 8
            }
            Method (_EVT, 1, Serialized)
            {
                Local0 = GDAT
                If (Local0 & One)
                {
                    Notify (\_SB.PWRB, 0x80)
                }
            }
        }
    }

    Name (_S5, Package (0x04) { 0x05, 0x05, Zero, Zero })
}
