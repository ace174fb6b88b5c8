package disk

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/dibuild/dib/compiler/plan/layout"
)

// writeTable writes one partition table on the image file f.
//
// GPT goes through go-diskfs with the layout's disk and partition GUIDs, so
// the table is reproducible. MBR tables are written from the layout's exact
// MBR/EBR records (the bytes DIB's own MBR writer produces, CHS included):
// go-diskfs has no logical partitions and always writes a zero disk
// signature, while the records describe primaries, the extended container
// and every EBR of the chain uniformly:
//
//	sector S, byte 440..443   disk signature (little endian), MBR only
//	sector S, byte 446+16*k   entry k: boot flag, CHS start, type, CHS end,
//	                          LBA start (LE32), sector count (LE32)
//	sector S, byte 510..511   0x55 0xAA
//
// where S is 0 for the MBR and the EBR sector of each logical partition;
// EBR entry 0 is the logical partition (start relative to the EBR), entry 1
// links the next EBR (start relative to the extended partition).
func writeTable(f *os.File, t *layout.PartitionTable) error {
	switch t.Label {
	case layout.LabelGPT:
		return writeGPT(f, t)
	case layout.LabelMBR:
		return writeMBR(f, t)
	}
	return fmt.Errorf("partition table %s: unknown label %q", t.Name, t.Label)
}

func writeGPT(f *os.File, t *layout.PartitionTable) error {
	ss := int64(t.SectorSize)
	table := &gpt.Table{
		LogicalSectorSize:  t.SectorSize,
		PhysicalSectorSize: t.SectorSize,
		ProtectiveMBR:      true,
		GUID:               t.DiskGUID,
	}
	for _, p := range t.Partitions {
		table.Partitions = append(table.Partitions, &gpt.Partition{
			Index:      p.Number,
			Start:      uint64(p.Start),
			End:        uint64(p.Start + p.Size - 1),
			Size:       uint64(p.Size * ss),
			Type:       gpt.Type(p.GPTType),
			Name:       p.GPTName,
			GUID:       p.GPTGUID,
			Attributes: p.GPTAttributes,
		})
	}
	if err := table.Write(f, t.DiskSectors*ss); err != nil {
		return fmt.Errorf("partition table %s: %w", t.Name, err)
	}
	return nil
}

func writeMBR(f *os.File, t *layout.PartitionTable) error {
	const ss = 512 // DIB's MBR writer always uses 512-byte sectors
	var id [4]byte
	binary.LittleEndian.PutUint32(id[:], t.MBRDiskID)
	if _, err := f.WriteAt(id[:], 440); err != nil {
		return err
	}
	for _, r := range t.MBRRecords {
		var e [16]byte
		if r.Boot {
			e[0] = 0x80
		}
		copy(e[1:4], r.CHSStart[:])
		e[4] = r.Type
		copy(e[5:8], r.CHSEnd[:])
		binary.LittleEndian.PutUint32(e[8:], r.LBAStart)
		binary.LittleEndian.PutUint32(e[12:], r.LBASize)
		if _, err := f.WriteAt(e[:], r.Sector*ss+446+16*int64(r.Slot)); err != nil {
			return err
		}
	}
	for _, s := range t.MBRSignatures {
		if _, err := f.WriteAt([]byte{0x55, 0xaa}, s*ss+510); err != nil {
			return err
		}
	}
	return nil
}
