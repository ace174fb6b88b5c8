package layout

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dibuild/dib/spec/diag"
)

// mbrSector is the sector size of DIB's MBR writer (level1/mbr.py), which
// assumes 512-byte sectors whatever the device.
const mbrSector = 512

// DIB's CHS geometry: the maximum heads and sectors, so the CHS values do
// not change when the disk grows.
const (
	chsHeads     = 254
	chsSectors   = 63
	chsCylinders = 1023
)

// lba2chs is DIB's MBR.lba2chs.
func lba2chs(lba int64) (c, h, s int64) {
	if lba > chsHeads*chsSectors*chsCylinders {
		return chsCylinders, chsHeads, chsSectors
	}
	return lba / (chsHeads * chsSectors), (lba / chsSectors) % chsHeads, lba%chsSectors + 1
}

// encodeCHS is DIB's MBR.encode_chs, including its way of putting the
// cylinder's high bits into the sector byte (cylinders // 4).
func encodeCHS(c, h, s int64) [3]uint8 {
	return [3]uint8{uint8(h), uint8(s | c/4), uint8(c % 256)}
}

func mbrRecord(sector int64, slot int, boot bool, typ uint8, start, size int64) MBRRecord {
	return MBRRecord{
		Sector: sector, Slot: slot, Boot: boot, Type: typ,
		CHSStart: encodeCHS(lba2chs(start)),
		CHSEnd:   encodeCHS(lba2chs(start + size)),
		LBAStart: uint32(start), LBASize: uint32(size),
	}
}

// mbrTable computes the table DIB's MBR class writes: primaries first in
// MBR slots 0…, then one extended partition (type 0x0f) from the first EBR
// to the end of the disk holding the logical partitions, each preceded by
// its EBR at the aligned start of its slot. Every partition starts and ends
// aligned; percentages are of the space still free, less one alignment.
func (r *resolver) mbrTable(t *TableTemplate, img *Image) (*PartitionTable, *diag.Diagnostic) {
	disk := img.SizeBytes
	out := &PartitionTable{
		Name: t.Name, Base: t.Base, Label: LabelMBR, SectorSize: mbrSector,
		DiskSizeBytes: disk, DiskSectors: disk / mbrSector, AlignBytes: t.AlignBytes,
		MBRDiskID: diskID(r.t.Seed, t.Base),
	}
	alignBlocks := t.AlignBytes / mbrSector
	align := func(b int64) int64 {
		if b%alignBlocks == 0 {
			return b
		}
		return (b/alignBlocks + 1) * alignBlocks
	}
	absStart := align(1)
	nextFree := absStart
	number := 0
	primaries, logicals := 0, 0
	var lastEBR int64
	out.MBRSignatures = []int64{0}
	for _, pn := range t.Partitions {
		free := disk - (nextFree+align(1))*mbrSector
		size, err := pn.Size.Of(free)
		if err != nil {
			return nil, errAt(pn.Path+"/size", "partition %s: %v", pn.Name, err)
		}
		if pn.MBRTypeBad {
			return nil, dsubject(errAt(pn.Path+"/type", "partition %s: MBR partition type %#x does not fit in one byte (DIB: struct.error: ubyte format requires 0 <= number <= 255)", pn.Name, pn.MBRType), pn.Name)
		}
		typ := uint8(pn.MBRType)
		length := size / mbrSector
		if size < 0 || length == 0 {
			return nil, dsubject(errAt(pn.Path+"/size", "partition %s: size %s gives %d bytes: the requested size of the image is smaller than the block device configuration", pn.Name, pn.Size.Spec, size), pn.Name)
		}
		if end := align(nextFree+1) + length + alignBlocks; end > 0xFFFFFFFF || length > 0xFFFFFFFF {
			return nil, dsubject(errAt(pn.Path+"/size", "partition %s: an MBR cannot address sectors past 2 TiB (DIB: struct.error: 'I' format requires 0 <= number <= 4294967295)", pn.Name), pn.Name)
		}
		if pn.Primary {
			if logicals > 0 {
				return nil, dsubject(errAt(pn.Path, "All primary partitions must be given first"), pn.Name)
			}
			if primaries == 4 {
				return nil, dsubject(errAt(pn.Path, "partition %s: an MBR holds at most 4 primary partitions", pn.Name), pn.Name)
			}
			start := align(nextFree)
			end := align(start + length)
			r.checkMBRFit(&pn, start, length, out.DiskSectors)
			out.MBRRecords = append(out.MBRRecords, mbrRecord(0, number, pn.Boot, typ, start, length))
			number++
			primaries++
			out.Partitions = append(out.Partitions, Partition{
				Node: pn.Name, Number: number, Kind: KindPrimary,
				Start: start, Size: length, StartBytes: start * mbrSector, SizeBytes: length * mbrSector,
				Boot: pn.Boot, Flags: pn.Flags, MBRType: typ, DeviceNode: t.Base + strconv.Itoa(number),
			})
			nextFree = end
			continue
		}
		if logicals == 0 {
			if primaries == 4 {
				return nil, dsubject(errAt(pn.Path, "partition %s: no MBR slot is left for the extended partition (4 primaries)", pn.Name), pn.Name)
			}
			absStart = nextFree
			extSize := out.DiskSectors - nextFree
			out.MBRRecords = append(out.MBRRecords, mbrRecord(0, number, false, 0x0f, nextFree, extSize))
			out.Extended = &Extended{
				Number: number + 1, Start: nextFree, Size: extSize,
				StartBytes: nextFree * mbrSector, SizeBytes: extSize * mbrSector, Type: 0x0f,
				DeviceNode: t.Base + strconv.Itoa(number+1),
			}
			number = 4
		}
		ebr := nextFree
		start := align(ebr + 1)
		end := align(start + length)
		r.checkMBRFit(&pn, start, length, out.DiskSectors)
		if lastEBR != 0 {
			out.MBRRecords = append(out.MBRRecords, mbrRecord(lastEBR, 1, false, 0x05, ebr-absStart, end-ebr))
		}
		out.MBRRecords = append(out.MBRRecords, mbrRecord(ebr, 0, pn.Boot, typ, align(1), length))
		out.MBRSignatures = append(out.MBRSignatures, ebr)
		number++
		logicals++
		out.Partitions = append(out.Partitions, Partition{
			Node: pn.Name, Number: number, Kind: KindLogical,
			Start: start, Size: length, StartBytes: start * mbrSector, SizeBytes: length * mbrSector,
			Boot: pn.Boot, Flags: pn.Flags, MBRType: typ, EBRSector: ebr, DeviceNode: t.Base + strconv.Itoa(number),
		})
		nextFree = end
		lastEBR = ebr
	}
	return out, nil
}

// checkMBRFit warns about a partition past the end of the disk. DIB's MBR
// writer does not check this and writes the entry anyway
// (test-lvm_tree_spanned_vg), so it is not an error; Linux will refuse the
// partition.
func (r *resolver) checkMBRFit(pn *PartitionTemplate, start, length, disk int64) {
	if start+length <= disk {
		return
	}
	d := diag.Warningf("partition %s (%s) ends at sector %d, past the end of the disk (%d sectors); DIB writes the MBR entry anyway", pn.Name, pn.Size.Spec, start+length, disk)
	d.Path, d.Subject = pn.Path+"/size", pn.Name
	d.Hint = "give a larger image size or smaller partitions"
	r.warn(d)
}

func doesNotFit(pn *PartitionTemplate, start, length, disk int64, sector int) *diag.Diagnostic {
	d := errAt(pn.Path+"/size", "The requested size of the image is smaller than the block device configuration: partition %s (%s) would end at sector %d of %d",
		pn.Name, pn.Size.Spec, start+length, disk)
	d.Subject = pn.Name
	d.Hint = "give a larger image size or smaller partitions"
	return d
}

// gptTable computes what DIB's _create_gpt and sgdisk make: each partition
// gets size//MiB MiB (percentages of what is left of the disk less 2 MiB),
// placed by sgdisk right after the previous one at 1 MiB alignment; the
// usable range is that of a 128-entry table.
func (r *resolver) gptTable(t *TableTemplate, img *Image) (*PartitionTable, *diag.Diagnostic) {
	ss := int64(img.SectorSize)
	disk := img.SizeBytes
	sectors := disk / ss
	first := 2 + 16384/ss
	out := &PartitionTable{
		Name: t.Name, Base: t.Base, Label: LabelGPT, SectorSize: img.SectorSize,
		DiskSizeBytes: disk, DiskSectors: sectors, AlignBytes: mib,
		FirstUsableLBA: first, LastUsableLBA: sectors - first,
		DiskGUID: SeededGUID(r.t.Seed, "gpt-disk", t.Base),
	}
	alignSectors := int64(mib) / ss
	if alignSectors < 1 {
		alignSectors = 1
	}
	free := disk - 2*mib
	next := first
	for i, pn := range t.Partitions {
		size, err := pn.Size.Of(free)
		if err != nil {
			return nil, errAt(pn.Path+"/size", "partition %s: %v", pn.Name, err)
		}
		if size > free {
			d := errAt(pn.Path+"/size", "The requested size of the image is smaller than the block device configuration: partition %s needs %d bytes, %d are left (DIB: AssertionError)", pn.Name, size, free)
			d.Subject = pn.Name
			d.Hint = "give a larger image size or smaller partitions"
			return nil, d
		}
		mibs := size / mib
		if mibs <= 0 {
			return nil, dsubject(errAt(pn.Path+"/size", "partition %s: size %s is less than 1 MiB; DIB passes sgdisk +%dM, which it refuses", pn.Name, pn.Size.Spec, mibs), pn.Name)
		}
		code, guid, known := gptType(pn.GPTType)
		if guid == "" {
			return nil, dsubject(errAt(pn.Path+"/type", "partition %s: %q is not a GPT type code sgdisk knows (a 4-digit hex code such as 8300 or EF00, or a GUID)", pn.Name, pn.GPTType), pn.Name)
		}
		if !known {
			d := diag.Warningf("partition %s: sgdisk has no exact match for type code %s and uses 8300 (Linux filesystem)", pn.Name, pn.GPTType).WithPath(pn.Path + "/type").WithSubject(pn.Name)
			r.warn(d)
		}
		start := (next + alignSectors - 1) / alignSectors * alignSectors
		length := mibs * mib / ss
		if start+length-1 > out.LastUsableLBA {
			return nil, doesNotFit(&pn, start, length, out.LastUsableLBA+1, img.SectorSize)
		}
		number := i + 1
		out.Partitions = append(out.Partitions, Partition{
			Node: pn.Name, Number: number, Kind: KindPrimary,
			Start: start, Size: length, StartBytes: start * ss, SizeBytes: length * ss,
			Boot: false, Flags: pn.Flags,
			GPTTypeCode: code, GPTType: guid, GPTName: pn.Name, GPTGUID: SeededGUID(r.t.Seed, "gpt-part", t.Base+"/"+pn.Name),
			DeviceNode: t.Base + strconv.Itoa(number),
		})
		next = start + length
		free -= size
	}
	return out, nil
}

// gptTypes maps sgdisk's 4-digit type codes to partition type GUIDs (the
// common ones; gdisk's parttypes.cc has the full list).
var gptTypes = map[string]string{
	"0700": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", // Microsoft basic data
	"0C01": "E3C9E316-0B5C-4DB8-817D-F92DF00215AE", // Microsoft reserved
	"2700": "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", // Windows RE
	"4100": "9E1A2D38-C612-4316-AA26-8B49521E5A8B", // PowerPC PReP boot
	"8200": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", // Linux swap
	"8300": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", // Linux filesystem
	"8302": "933AC7E1-2EB4-4F13-B844-0E14E2AEF915", // Linux /home
	"8303": "44479540-F297-41B2-9AF7-D131D5F0458A", // Linux x86 root (/)
	"8304": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", // Linux x86-64 root (/)
	"8305": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE", // Linux ARM64 root (/)
	"8306": "3B8F8425-20E0-4F3B-907F-1A25A76F98E8", // Linux /srv
	"8307": "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3", // Linux ARM32 root (/)
	"8308": "7FFEC5C9-2D00-49B7-8941-3EA10A5586B7", // Linux dm-crypt
	"8309": "CA7D7CCB-63ED-4C53-861C-1742536059CC", // Linux LUKS
	"8310": "4D21B016-B534-45C2-A9FB-5C16E091FD2D", // Linux /var
	"8311": "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1", // Linux /var/tmp
	"8E00": "E6D6D379-F507-44C2-A23C-238F2A3DF928", // Linux LVM
	"A500": "516E7CB4-6ECF-11D6-8FF8-00022D09712B", // FreeBSD disklabel
	"AF00": "48465300-0000-11AA-AA11-00306543ECAC", // Apple HFS/HFS+
	"EA00": "BC13C2FF-59E6-4262-A352-B275FD6F7172", // XBOOTLDR
	"EF00": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", // EFI system partition
	"EF01": "024DEE41-33E7-11D3-9D69-0008C781F39F", // MBR partition scheme
	"EF02": "21686148-6449-6E6F-744E-656564454649", // BIOS boot partition
	"FD00": "A19D880F-05FC-4D3B-A006-743F0F84911E", // Linux RAID
}

// gptType resolves a type as sgdisk -t does: a GUID is taken as is; a hex
// code (optionally 0x-prefixed, any case) is looked up; an unknown code
// falls back to 8300 (known=false). guid is "" when the value is neither.
func gptType(s string) (code, guid string, known bool) {
	t := strings.TrimSpace(s)
	if len(t) == 36 && strings.Count(t, "-") == 4 {
		for _, c := range strings.ReplaceAll(t, "-", "") {
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return s, "", false
			}
		}
		return s, strings.ToUpper(t), true
	}
	h := strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	if h == "" || len(h) > 4 {
		return s, "", false
	}
	n, err := strconv.ParseUint(h, 16, 16)
	if err != nil {
		return s, "", false
	}
	key := fmt.Sprintf("%04X", n)
	if g, ok := gptTypes[key]; ok {
		return s, g, true
	}
	return s, gptTypes["8300"], false
}
