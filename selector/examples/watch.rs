//! Watches stdin with the selector and reports what arrives, until end of input.
//!
//! ```sh
//! echo hello | cargo run -p tarn-selector --example watch
//! TARN_SELECTOR=select cargo run -p tarn-selector --example watch
//! ```

use std::io::{self, Read};
use std::time::Duration;

use tarn_selector::{Events, Interest, Mode, Selector, Token};

fn main() -> io::Result<()> {
    let selector = Selector::new()?;
    println!(
        "backend: {}; type lines, end with Ctrl-D",
        selector.backend()
    );
    selector.register(0, Token(0), Interest::READABLE, Mode::Level)?;
    let mut events = Events::with_capacity(8);
    let mut buf = [0; 4096];
    loop {
        if selector.select(&mut events, Some(Duration::from_secs(5)))? == 0 {
            println!("(5 s of silence)");
            continue;
        }
        for event in &events {
            println!("{event:?}");
            let n = io::stdin().lock().read(&mut buf)?;
            if n == 0 {
                println!("end of input");
                return selector.deregister(0);
            }
            println!("read {n} bytes: {:?}", String::from_utf8_lossy(&buf[..n]));
        }
    }
}
