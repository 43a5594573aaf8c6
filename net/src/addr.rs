//! [`ToSocketAddrs`]: addresses to bind or connect to, resolved without
//! blocking the executor (names go to tarn's blocking pool).

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Something that names one or more socket addresses.
///
/// Implemented for the same types as std's `ToSocketAddrs`. Literal
/// addresses are parsed on the spot; host names are resolved on tarn's
/// blocking pool ([`tarn_blocking`]), so a slow DNS
/// server never blocks the executor thread.
pub trait ToSocketAddrs: sealed::Sealed {}

mod sealed {
    use super::*;

    /// What resolution needs: nothing, or a lookup of an owned name.
    #[derive(Debug)]
    pub enum Resolve {
        Ready(io::Result<Vec<SocketAddr>>),
        Lookup(String),
    }

    pub trait Sealed {
        fn resolve(&self) -> Resolve;
    }
}

pub(crate) use sealed::Resolve;
use sealed::Sealed;

/// What resolving `addr` takes, to be done later (see [`Resolve::addrs`]).
pub(crate) fn lookup(addr: &impl ToSocketAddrs) -> Resolve {
    addr.resolve()
}

/// Resolves `addr` to its list of addresses, in order.
pub(crate) async fn resolve(addr: &impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    addr.resolve().addrs().await
}

impl Resolve {
    /// The addresses: at once for literal ones, from the blocking pool for
    /// a name.
    pub(crate) async fn addrs(self) -> io::Result<Vec<SocketAddr>> {
        match self {
            Resolve::Ready(addrs) => addrs,
            Resolve::Lookup(name) => {
                tarn_blocking::try_unblock(move || {
                    std::net::ToSocketAddrs::to_socket_addrs(&name.as_str()).map(Iterator::collect)
                })?
                .await
            }
        }
    }

    /// What is being resolved, for error messages: the name, or the
    /// addresses.
    pub(crate) fn describe(&self) -> String {
        match self {
            Resolve::Ready(Ok(addrs)) => describe(addrs),
            Resolve::Ready(Err(e)) => e.to_string(),
            Resolve::Lookup(name) => name.clone(),
        }
    }
}

/// The error for an address list that resolved to nothing.
pub(crate) fn no_address(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("cannot {what} an empty list of addresses"),
    )
}

/// "a, b, c" for error messages.
pub(crate) fn describe(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ToSocketAddrs` for types std resolves without a lookup.
macro_rules! literal_addrs {
    ($($ty: ty),*) => {$(
        impl ToSocketAddrs for $ty {}
        impl Sealed for $ty {
            fn resolve(&self) -> Resolve {
                Resolve::Ready(std::net::ToSocketAddrs::to_socket_addrs(self).map(Iterator::collect))
            }
        }
    )*};
}

literal_addrs!(SocketAddr, SocketAddrV4, SocketAddrV6, (IpAddr, u16));

impl ToSocketAddrs for [SocketAddr] {}
impl Sealed for [SocketAddr] {
    fn resolve(&self) -> Resolve {
        Resolve::Ready(Ok(self.to_vec()))
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> Sealed for &T {
    fn resolve(&self) -> Resolve {
        (**self).resolve()
    }
}

impl ToSocketAddrs for str {}
impl Sealed for str {
    fn resolve(&self) -> Resolve {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Resolve::Ready(Ok(vec![addr])),
            Err(_) => Resolve::Lookup(self.to_string()),
        }
    }
}

impl ToSocketAddrs for String {}
impl Sealed for String {
    fn resolve(&self) -> Resolve {
        self.as_str().resolve()
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Sealed for (&str, u16) {
    fn resolve(&self) -> Resolve {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Resolve::Ready(Ok(vec![SocketAddr::new(ip, self.1)])),
            Err(_) => Resolve::Lookup(format!("{}:{}", self.0, self.1)),
        }
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Sealed for (String, u16) {
    fn resolve(&self) -> Resolve {
        (self.0.as_str(), self.1).resolve()
    }
}
