// Attributes passed through a `macro_rules!` `$m:meta` fragment arrive wrapped in an invisible group;
// `#[pin_data]` must still see them.
use pinit::pin_data;

macro_rules! with_attr {
    (#[$m:meta] $($item:tt)*) => {
        #[pin_data]
        #[$m]
        $($item)*
    };
}

macro_rules! variant_attr {
    ($m:meta) => {
        #[pin_data]
        #[repr(u8)]
        enum CfgVariant {
            #[$m]
            Hidden { a: u32 },
            Shown { b: u32 },
        }
    };
}

macro_rules! field_attr {
    ($m:meta) => {
        #[pin_data]
        #[repr(u8)]
        enum CfgField {
            Pair(#[$m] u32, &'static u32),
        }
    };
}

with_attr! {
    #[repr(C)]
    enum ReprC { A { a: u32 }, B }
}

variant_attr!(cfg(any()));
field_attr!(cfg(any()));

fn main() {}
