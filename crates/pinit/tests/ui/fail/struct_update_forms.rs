// Only `..Zeroable::init_zeroed()` may end an initialiser: any other struct update would build a whole
// value on the stack and move it.
use pinit::{InPlaceInit, init};

#[derive(Default)]
struct Config {
    port: u16,
    verbose: bool,
}

fn base() -> Config {
    Config::default()
}

fn main() {
    let _ = Box::init(init!(Config { port: 1, ..Default::default() }));
    let _ = Box::init(init!(Config { port: 1, ..base() }));
}
