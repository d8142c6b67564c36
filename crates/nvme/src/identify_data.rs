//! The whole Identify Controller and Identify Namespace data structures, field by field, for
//! tools that print them. Each structure is declared once as a table of (name, offset, kind):
//! the table gives both the typed struct and the ordered list of named fields, with the
//! names nvme-cli uses.

/// A decoded field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// An integer of up to 64 bits.
    Int(u64),
    /// A 128-bit counter (nvme-cli prints these as decimal strings in JSON).
    Wide(u128),
    /// Text as the controller padded it (trailing spaces kept, stopped at the first NUL).
    Text(String),
    /// Bytes printed as hex without separators (EUI-64, NGUID).
    Hex(Vec<u8>),
    /// A UUID, printed in its usual 8-4-4-4-12 form.
    Uuid([u8; 16]),
}

/// How a field is stored.
trait Decode: Sized {
    fn decode(d: &[u8], at: usize) -> Self;
    fn value(&self) -> FieldValue;
}

macro_rules! int_decode {
    ($($t:ty),*) => {$(
        impl Decode for $t {
            fn decode(d: &[u8], at: usize) -> $t {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                let n = b.len();
                b.copy_from_slice(&d[at..at + n]);
                <$t>::from_le_bytes(b)
            }
            fn value(&self) -> FieldValue {
                FieldValue::Int(u64::from(*self))
            }
        }
    )*};
}
int_decode!(u8, u16, u32, u64);

impl Decode for u128 {
    fn decode(d: &[u8], at: usize) -> u128 {
        u128::from_le_bytes(d[at..at + 16].try_into().unwrap_or([0; 16]))
    }
    fn value(&self) -> FieldValue {
        FieldValue::Wide(*self)
    }
}

/// A 24-bit little-endian integer (the IEEE OUI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct U24(pub u32);

impl Decode for U24 {
    fn decode(d: &[u8], at: usize) -> U24 {
        U24(u32::from_le_bytes([d[at], d[at + 1], d[at + 2], 0]))
    }
    fn value(&self) -> FieldValue {
        FieldValue::Int(u64::from(self.0))
    }
}

/// Fixed-width ASCII text of `N` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<const N: usize>(pub String);

impl<const N: usize> Decode for Text<N> {
    fn decode(d: &[u8], at: usize) -> Text<N> {
        let raw = &d[at..at + N];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(N);
        Text(String::from_utf8_lossy(&raw[..end]).into_owned())
    }
    fn value(&self) -> FieldValue {
        FieldValue::Text(self.0.clone())
    }
}

/// `N` bytes shown as hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

impl<const N: usize> Decode for HexBytes<N> {
    fn decode(d: &[u8], at: usize) -> HexBytes<N> {
        HexBytes(d[at..at + N].try_into().unwrap_or([0; N]))
    }
    fn value(&self) -> FieldValue {
        FieldValue::Hex(self.0.to_vec())
    }
}

/// A 16-byte UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uuid(pub [u8; 16]);

impl Decode for Uuid {
    fn decode(d: &[u8], at: usize) -> Uuid {
        Uuid(d[at..at + 16].try_into().unwrap_or([0; 16]))
    }
    fn value(&self) -> FieldValue {
        FieldValue::Uuid(self.0)
    }
}

impl std::fmt::Display for Uuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

macro_rules! layout {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident: $t:ty = $at:expr,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $t,)*
        }

        impl $name {
            fn decode_fields(d: &[u8]) -> $name {
                $name { $($field: <$t as Decode>::decode(d, $at),)* }
            }

            /// Every field in the structure's order, by its nvme-cli name.
            pub fn fields(&self) -> Vec<(&'static str, FieldValue)> {
                vec![$((stringify!($field), self.$field.value()),)*]
            }
        }
    };
}

layout! {
    /// The fixed fields of Identify Controller (CNS 01h), before the power state descriptors.
    IdCtrlFields {
        /// PCI vendor ID.
        vid: u16 = 0, ssvid: u16 = 2, sn: Text<20> = 4, mn: Text<40> = 24, fr: Text<8> = 64,
        rab: u8 = 72, ieee: U24 = 73, cmic: u8 = 76, mdts: u8 = 77, cntlid: u16 = 78,
        ver: u32 = 80, rtd3r: u32 = 84, rtd3e: u32 = 88, oaes: u32 = 92, ctratt: u32 = 96,
        rrls: u16 = 100, cntrltype: u8 = 111, fguid: Uuid = 112, crdt1: u16 = 128,
        crdt2: u16 = 130, crdt3: u16 = 132, nvmsr: u8 = 253, vwci: u8 = 254, mec: u8 = 255,
        oacs: u16 = 256, acl: u8 = 258, aerl: u8 = 259, frmw: u8 = 260, lpa: u8 = 261,
        elpe: u8 = 262, npss: u8 = 263, avscc: u8 = 264, apsta: u8 = 265, wctemp: u16 = 266,
        cctemp: u16 = 268, mtfa: u16 = 270, hmpre: u32 = 272, hmmin: u32 = 276,
        tnvmcap: u128 = 280, unvmcap: u128 = 296, rpmbs: u32 = 312, edstt: u16 = 316,
        dsto: u8 = 318, fwug: u8 = 319, kas: u16 = 320, hctma: u16 = 322, mntmt: u16 = 324,
        mxtmt: u16 = 326, sanicap: u32 = 328, hmminds: u32 = 332, hmmaxd: u16 = 336,
        nsetidmax: u16 = 338, endgidmax: u16 = 340, anatt: u8 = 342, anacap: u8 = 343,
        anagrpmax: u32 = 344, nanagrpid: u32 = 348, pels: u32 = 352, domainid: u16 = 356,
        megcap: u128 = 368, sqes: u8 = 512, cqes: u8 = 513, maxcmd: u16 = 514, nn: u32 = 516,
        oncs: u16 = 520, fuses: u16 = 522, fna: u8 = 524, vwc: u8 = 525, awun: u16 = 526,
        awupf: u16 = 528, icsvscc: u8 = 530, nwpc: u8 = 531, acwu: u16 = 532, ocfs: u16 = 534,
        sgls: u32 = 536, mnan: u32 = 540, maxdna: u128 = 544, maxcna: u32 = 560,
        subnqn: Text<256> = 768, ioccsz: u32 = 1792, iorcsz: u32 = 1796, icdoff: u16 = 1800,
        fcatt: u8 = 1802, msdbd: u8 = 1803, ofcs: u16 = 1804,
    }
}

layout! {
    /// One power state descriptor (32 bytes).
    PowerState {
        /// Maximum power (centiwatts or as scaled by flags).
        mp: u16 = 0, flags: u8 = 3, enlat: u32 = 4, exlat: u32 = 8, rrt: u8 = 12, rrl: u8 = 13,
        rwt: u8 = 14, rwl: u8 = 15, idlp: u16 = 16, ips: u8 = 18, actp: u16 = 20,
        apws: u8 = 22,
    }
}

/// Identify Controller, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyController {
    /// The fixed fields.
    pub fields: IdCtrlFields,
    /// Power state descriptors 0..=NPSS.
    pub power_states: Vec<PowerState>,
}

impl IdentifyController {
    /// Decodes the 4 KiB data structure.
    pub fn parse(d: &[u8; 4096]) -> IdentifyController {
        let fields = IdCtrlFields::decode_fields(d);
        let power_states = (0..=usize::from(fields.npss).min(31))
            .map(|i| PowerState::decode_fields(&d[2048 + 32 * i..2080 + 32 * i]))
            .collect();
        IdentifyController {
            fields,
            power_states,
        }
    }
}

layout! {
    /// The fixed fields of Identify Namespace (CNS 00h), before the LBA formats.
    IdNsFields {
        /// Namespace size in logical blocks.
        nsze: u64 = 0, ncap: u64 = 8, nuse: u64 = 16, nsfeat: u8 = 24, nlbaf: u8 = 25,
        flbas: u8 = 26, mc: u8 = 27, dpc: u8 = 28, dps: u8 = 29, nmic: u8 = 30, rescap: u8 = 31,
        fpi: u8 = 32, dlfeat: u8 = 33, nawun: u16 = 34, nawupf: u16 = 36, nacwu: u16 = 38,
        nabsn: u16 = 40, nabo: u16 = 42, nabspf: u16 = 44, noiob: u16 = 46, nvmcap: u128 = 48,
        npwg: u16 = 64, npwa: u16 = 66, npdg: u16 = 68, npda: u16 = 70, nows: u16 = 72,
        mssrl: u16 = 74, mcl: u32 = 76, msrc: u8 = 80, nulbaf: u8 = 82, anagrpid: u32 = 92,
        nsattr: u8 = 99, nvmsetid: u16 = 100, endgid: u16 = 102, nguid: HexBytes<16> = 104,
        eui64: HexBytes<8> = 120,
    }
}

layout! {
    /// One LBA format: metadata size, data size (power of two), relative performance.
    LbaFormat { ms: u16 = 0, ds: u8 = 2, rp: u8 = 3, }
}

/// Identify Namespace, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyNamespace {
    /// The fixed fields.
    pub fields: IdNsFields,
    /// LBA formats 0..=NLBAF.
    pub lba_formats: Vec<LbaFormat>,
}

impl IdentifyNamespace {
    /// Decodes the 4 KiB data structure.
    pub fn parse(d: &[u8; 4096]) -> IdentifyNamespace {
        let fields = IdNsFields::decode_fields(d);
        let lba_formats = (0..=usize::from(fields.nlbaf).min(63))
            .map(|i| {
                let mut f = LbaFormat::decode_fields(&d[128 + 4 * i..132 + 4 * i]);
                f.rp &= 0x3;
                f
            })
            .collect();
        IdentifyNamespace {
            fields,
            lba_formats,
        }
    }

    /// The LBA format in use (FLBAS bits 3:0, and 6:5 above 16 formats).
    pub fn current_format(&self) -> usize {
        let flbas = usize::from(self.fields.flbas);
        let index = (flbas & 0xf) | (flbas >> 5 & 0x3) << 4;
        if self.fields.nlbaf > 15 {
            index
        } else {
            flbas & 0xf
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_fields_come_from_their_offsets() {
        let mut d = [0u8; 4096];
        d[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        d[4..24].copy_from_slice(b"SERIAL 1            ");
        d[73..76].copy_from_slice(&[0x00, 0x54, 0x52]);
        d[263] = 1;
        d[280..296].copy_from_slice(&(1u128 << 70).to_le_bytes());
        d[2048 + 32..2048 + 34].copy_from_slice(&250u16.to_le_bytes());
        let id = IdentifyController::parse(&d);
        assert_eq!(id.fields.vid, 0x1b36);
        assert_eq!(id.fields.sn.0, "SERIAL 1            ");
        assert_eq!(id.fields.ieee.0, 0x525400);
        assert_eq!(id.fields.tnvmcap, 1 << 70);
        assert_eq!(id.power_states.len(), 2);
        assert_eq!(id.power_states[1].mp, 250);
        let fields = id.fields.fields();
        assert_eq!(fields[0], ("vid", FieldValue::Int(0x1b36)));
        assert_eq!(fields.last().unwrap().0, "ofcs");
    }

    #[test]
    fn namespace_formats_and_uuid_text() {
        let mut d = [0u8; 4096];
        d[25] = 1;
        d[26] = 1;
        d[130] = 9;
        d[134] = 12;
        d[135] = 0x82;
        let ns = IdentifyNamespace::parse(&d);
        assert_eq!(ns.lba_formats.len(), 2);
        assert_eq!(ns.current_format(), 1);
        assert_eq!(ns.lba_formats[1].ds, 12);
        assert_eq!(ns.lba_formats[1].rp, 2);
        let uuid = Uuid(*b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x02\x03\x04\x05\x06\x07\x08");
        assert_eq!(uuid.to_string(), "12345678-9abc-def0-0102-030405060708");
    }
}
