// Something that is no field form gets one message that lists the forms.
use pinit::{InPlaceInit, init};

struct Config {
    port: u16,
}

fn main() {
    let _ = Box::init(init!(Config { port = 1 }));
}
