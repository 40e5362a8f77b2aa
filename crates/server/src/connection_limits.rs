//! What one client may take of a listener (issue 22, finding 1: one host held every connection
//! with request bodies it never sent). Two defences, beside the global connection cap of
//! [`crate::transport`]:
//!
//! - a cap on the connections one address holds open, an IPv6 address counted with its whole
//!   /64 ([`connection_key`], [`PerAddress`]); a connection over the cap is closed as soon as it
//!   is accepted. Trusted proxies are not capped: their connections carry many clients;
//! - a deadline for reading a request, body included, counted from its first byte, and a
//!   minimum rate for its body after a grace ([`RequestPace`]); a body that misses either ends
//!   with an error, and the connection closes once the handler has answered (hyper does not
//!   reuse a connection whose request body was left unread).
//!
//! The rules are pure ([`connection_key`], [`RequestPace::cut_at`]). Applying them costs one
//! lock of the per-address map when a connection opens and one when it closes, one shared
//! allocation per connection, per request a clock read at its first byte and an atomic store;
//! a request with a body also gets a wrapper (inside the box axum makes anyway) and a reference
//! count, and a timer only while its body keeps the handler waiting. A request without a body
//! (an OCSP GET, the hot path) is not wrapped ([`paced`]).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::future::Future as _;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What the per-address cap counts connections by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// An IPv4 address (an IPv4-mapped IPv6 address counts as the IPv4 address it carries).
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address: its /64, the smallest network one subscriber
    /// normally gets (as the rate limits count, `client_address`).
    V6Network(u64),
}

/// The key an address's connections are counted under.
pub fn connection_key(address: IpAddr) -> AddressKey {
    // `::ffff:192.0.2.1` on a dual-stack listener is the IPv4 client 192.0.2.1; were it taken
    // as IPv6, every IPv4 client would share the one /64 `::ffff:0:0/96` lies in.
    match address.to_canonical() {
        IpAddr::V4(v4) => AddressKey::V4(v4),
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h, ..] = v6.octets();
            AddressKey::V6Network(u64::from_be_bytes([a, b, c, d, e, f, g, h]))
        }
    }
}

/// The connections open per [`AddressKey`], each key up to a cap.
#[derive(Debug)]
pub struct PerAddress {
    cap: u32,
    open: Mutex<HashMap<AddressKey, u32>>,
}

impl PerAddress {
    /// An empty count; `cap` connections per key (at least one).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: u32::try_from(cap).unwrap_or(u32::MAX).max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection under `key`, or `None` when the key holds its cap.
    pub fn admit(self: &Arc<Self>, key: AddressKey) -> Option<AddressPermit> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressPermit {
            owner: self.clone(),
            key,
        })
    }

    /// How many connections `key` holds.
    pub fn open(&self, key: AddressKey) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&key).copied().unwrap_or(0)
    }
}

/// One connection's place in [`PerAddress`], given back when dropped.
#[derive(Debug)]
pub struct AddressPermit {
    owner: Arc<PerAddress>,
    key: AddressKey,
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A key without connections is forgotten, so the map holds no more keys than there are
        // connections (the global cap).
        if let Entry::Occupied(mut entry) = open.entry(self.key) {
            if *entry.get() <= 1 {
                entry.remove();
            } else {
                *entry.get_mut() -= 1;
            }
        }
    }
}

/// How fast a request must arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPace {
    /// From a request's first byte to the last byte of its body.
    pub read_timeout: Duration,
    /// The least average rate of a body, in bytes per second, once `min_rate_grace` has
    /// passed; 0: none.
    pub min_body_bytes_per_sec: u64,
    /// How long a body may come slower than that at its start.
    pub min_rate_grace: Duration,
}

impl Default for RequestPace {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(30),
            min_body_bytes_per_sec: 500,
            min_rate_grace: Duration::from_secs(5),
        }
    }
}

/// Why a request was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Its read deadline passed.
    Deadline,
    /// Its body came slower than the minimum rate.
    TooSlow,
}

impl RequestPace {
    /// When a body is cut off if no further byte arrives, and why: its request's first byte
    /// came at `first_byte`, the handler first asked for the body at `body_start`, and
    /// `received` bytes of it have come. Each byte buys `1 / min_body_bytes_per_sec` seconds
    /// beyond the grace, so a body is cut once it is behind that rate on average; the deadline
    /// holds whatever the rate.
    pub fn cut_at(
        &self,
        first_byte: Instant,
        body_start: Instant,
        received: u64,
    ) -> (Instant, Cut) {
        // INVARIANT: the settings bound the timeout to an hour; an Instant cannot overflow by
        // it. Were it to, cutting at once is the safe side.
        let deadline = first_byte
            .checked_add(self.read_timeout)
            .unwrap_or(first_byte);
        if self.min_body_bytes_per_sec == 0 {
            return (deadline, Cut::Deadline);
        }
        let earned = Duration::from_nanos(
            received.saturating_mul(1_000_000_000) / self.min_body_bytes_per_sec,
        );
        let too_slow = body_start
            .checked_add(self.min_rate_grace)
            .and_then(|at| at.checked_add(earned));
        match too_slow {
            Some(at) if at < deadline => (at, Cut::TooSlow),
            _ => (deadline, Cut::Deadline),
        }
    }
}

/// Requests and connections cut short, for `/metrics`.
#[derive(Debug, Default)]
pub struct TransportCounters {
    /// Connections closed on accepting because their address held its share.
    pub(crate) refused_per_address: AtomicU64,
    /// Requests cut off at their read deadline.
    pub(crate) cut_at_deadline: AtomicU64,
    /// Request bodies cut off for coming slower than the minimum rate.
    pub(crate) cut_too_slow: AtomicU64,
}

impl TransportCounters {
    /// Counts a connection refused by the per-address cap.
    pub fn refused_per_address(&self) {
        self.refused_per_address.fetch_add(1, Ordering::Relaxed);
    }

    fn cut(&self, cut: Cut) {
        let counter = match cut {
            Cut::Deadline => &self.cut_at_deadline,
            Cut::TooSlow => &self.cut_too_slow,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// No request has begun since the last one ended (see [`RequestClock`]).
const WAITING: u64 = 0;

/// One connection's record of when its current request's first byte came, and how its
/// requests must keep pace. Shared by the connection's reader ([`Timed`]) and its requests'
/// bodies ([`RequestBody`]).
#[derive(Debug)]
pub struct RequestClock {
    opened: Instant,
    /// Nanoseconds from `opened` to the first byte, plus one; [`WAITING`] until it comes.
    first_byte: AtomicU64,
    pace: RequestPace,
    counters: Arc<TransportCounters>,
}

impl RequestClock {
    /// The clock of a connection opened now.
    pub fn new(pace: RequestPace, counters: Arc<TransportCounters>) -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            first_byte: AtomicU64::new(WAITING),
            pace,
            counters,
        })
    }

    /// Bytes arrived: the first of a request when none had since the last one ended.
    fn bytes_arrived(&self) {
        if self.first_byte.load(Ordering::Relaxed) == WAITING {
            let since = self.opened.elapsed().as_nanos();
            let since = u64::try_from(since).unwrap_or(u64::MAX - 1);
            self.first_byte.store(since + 1, Ordering::Relaxed);
        }
    }

    /// When the current request's first byte came (now if the bytes were read with the
    /// previous request's, which only pipelining does).
    fn first_byte(&self) -> Instant {
        match self.first_byte.load(Ordering::Relaxed) {
            WAITING => Instant::now(),
            stamp => self.opened + Duration::from_nanos(stamp - 1),
        }
    }

    /// The request is read or abandoned: the next byte begins the next one.
    fn request_ended(&self) {
        self.first_byte.store(WAITING, Ordering::Relaxed);
    }
}

pin_project! {
    /// A connection's byte stream that tells its [`RequestClock`] when bytes arrive.
    #[derive(Debug)]
    pub struct Timed<I> {
        #[pin]
        io: I,
        clock: Arc<RequestClock>,
    }
}

impl<I> Timed<I> {
    /// `io`, reporting to `clock`.
    pub fn new(io: I, clock: Arc<RequestClock>) -> Self {
        Self { io, clock }
    }
}

impl<I: AsyncRead> AsyncRead for Timed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let read = this.io.poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_arrived();
        }
        read
    }
}

impl<I: AsyncWrite> AsyncWrite for Timed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// A request body that did not arrive.
#[derive(Debug, thiserror::Error)]
pub enum BodyError<E> {
    /// The request's read deadline passed before its body ended.
    #[error("the request was not read within its deadline")]
    Deadline,
    /// The body came slower than the minimum rate.
    #[error("the request body came slower than the minimum rate")]
    TooSlow,
    /// Reading it failed.
    #[error("reading the request body failed")]
    Read(#[source] E),
}

pin_project! {
    /// A request's body, ended with a [`BodyError`] when it does not keep the connection's
    /// [`RequestPace`].
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        // Set only once the body has kept its reader waiting.
        #[pin]
        timer: Option<Sleep>,
        clock: Arc<RequestClock>,
        first_byte: Option<Instant>,
        body_start: Option<Instant>,
        received: u64,
        cut: Option<Cut>,
    }

    impl<B> PinnedDrop for RequestBody<B> {
        fn drop(this: Pin<&mut Self>) {
            this.project().clock.request_ended();
        }
    }
}

/// A request as the router takes it, its body kept to the connection's pace. A request without a
/// body (an OCSP GET, the hot path) is not wrapped: there is nothing to pace, and its reading
/// ends now, so that the next byte begins the next request.
pub fn paced<B>(
    request: axum::http::Request<B>,
    clock: &Arc<RequestClock>,
) -> axum::http::Request<axum::body::Body>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if request.body().is_end_stream() {
        clock.request_ended();
        request.map(axum::body::Body::new)
    } else {
        let clock = clock.clone();
        request.map(|body| axum::body::Body::new(RequestBody::new(body, clock)))
    }
}

impl<B> RequestBody<B> {
    /// The body of a request on the connection whose clock is `clock`.
    pub fn new(inner: B, clock: Arc<RequestClock>) -> Self {
        Self {
            inner,
            timer: None,
            clock,
            first_byte: None,
            body_start: None,
            received: 0,
            cut: None,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = BodyError<B::Error>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        match *this.cut {
            Some(Cut::Deadline) => return Poll::Ready(Some(Err(BodyError::Deadline))),
            Some(Cut::TooSlow) => return Poll::Ready(Some(Err(BodyError::TooSlow))),
            None => {}
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let length = u64::try_from(data.len()).unwrap_or(u64::MAX);
                    *this.received = this.received.saturating_add(length);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(BodyError::Read(error)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        // The body keeps its reader waiting: wake it when the body falls behind its pace.
        let first_byte = *this
            .first_byte
            .get_or_insert_with(|| this.clock.first_byte());
        let body_start = *this.body_start.get_or_insert_with(Instant::now);
        let (at, cut) = this
            .clock
            .pace
            .cut_at(first_byte, body_start, *this.received);
        match this.timer.as_mut().as_pin_mut() {
            Some(timer) if timer.deadline() == at => {}
            Some(timer) => timer.reset(at),
            None => this.timer.set(Some(tokio::time::sleep_until(at))),
        }
        let expired = this
            .timer
            .as_pin_mut()
            .is_some_and(|timer| timer.poll(cx).is_ready());
        if !expired {
            return Poll::Pending;
        }
        *this.cut = Some(cut);
        this.clock.counters.cut(cut);
        Poll::Ready(Some(Err(match cut {
            Cut::Deadline => BodyError::Deadline,
            Cut::TooSlow => BodyError::TooSlow,
        })))
    }

    fn is_end_stream(&self) -> bool {
        self.cut.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_ipv4_per_address() {
        let key = |text| connection_key(ip(text));
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:fffe")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(
            key("2001:db8:1:2::1"),
            AddressKey::V6Network(0x2001_0db8_0001_0002)
        );
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        // An IPv4 client on a dual-stack listener is itself, not the /64 of every IPv4 client.
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("::ffff:192.0.2.1"), key("::ffff:192.0.2.2"));
    }

    #[test]
    fn an_address_holds_up_to_its_cap_and_gets_places_back() {
        let counts = PerAddress::new(2);
        let a = connection_key(ip("2001:db8::1"));
        let neighbour = connection_key(ip("2001:db8::2"));
        let other = connection_key(ip("2001:db8:0:1::1"));
        let first = counts.admit(a).unwrap();
        let second = counts.admit(neighbour).unwrap();
        assert!(counts.admit(a).is_none(), "a third connection of one /64");
        assert!(counts.admit(other).is_some(), "another /64 was held back");
        drop(first);
        let third = counts.admit(a).unwrap();
        assert_eq!(counts.open(a), 2);
        drop((second, third));
        assert_eq!(counts.open(a), 0);
        assert!(
            counts.open.lock().unwrap().is_empty(),
            "keys without connections are kept"
        );
    }

    #[test]
    fn a_body_is_cut_when_behind_the_minimum_rate_after_the_grace_or_at_the_deadline() {
        let pace = RequestPace {
            read_timeout: Duration::from_secs(30),
            min_body_bytes_per_sec: 500,
            min_rate_grace: Duration::from_secs(5),
        };
        let first = Instant::now();
        let body = first + Duration::from_secs(1);
        // Nothing came: cut when the grace ends.
        assert_eq!(
            pace.cut_at(first, body, 0),
            (body + Duration::from_secs(5), Cut::TooSlow)
        );
        // Each 500 bytes buy a second.
        assert_eq!(
            pace.cut_at(first, body, 500),
            (body + Duration::from_secs(6), Cut::TooSlow)
        );
        assert_eq!(
            pace.cut_at(first, body, 250),
            (body + Duration::from_millis(5500), Cut::TooSlow)
        );
        // A body that keeps the rate still ends at the deadline, counted from the first byte.
        assert_eq!(
            pace.cut_at(first, body, 12_000),
            (first + Duration::from_secs(30), Cut::Deadline)
        );
        assert_eq!(
            pace.cut_at(first, body, u64::MAX),
            (first + Duration::from_secs(30), Cut::Deadline)
        );
        // Without a minimum rate, only the deadline.
        let no_rate = RequestPace {
            min_body_bytes_per_sec: 0,
            ..pace
        };
        assert_eq!(
            no_rate.cut_at(first, body, 0),
            (first + Duration::from_secs(30), Cut::Deadline)
        );
        // A deadline shorter than the grace comes first.
        let short = RequestPace {
            read_timeout: Duration::from_secs(3),
            ..pace
        };
        assert_eq!(
            short.cut_at(first, body, 0),
            (first + Duration::from_secs(3), Cut::Deadline)
        );
    }

    #[test]
    fn a_request_is_timed_from_its_first_byte_not_its_later_ones() {
        let clock = RequestClock::new(RequestPace::default(), Arc::default());
        clock.bytes_arrived();
        let first = clock.first_byte();
        std::thread::sleep(Duration::from_millis(5));
        // The body's bytes do not move the request's start.
        clock.bytes_arrived();
        assert_eq!(clock.first_byte(), first);
        // Once the request is read, the next byte begins the next request.
        clock.request_ended();
        std::thread::sleep(Duration::from_millis(5));
        clock.bytes_arrived();
        assert!(clock.first_byte() >= first + Duration::from_millis(5));
    }

    /// A body whose bytes never come.
    struct Silent;

    impl Body for Silent {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    async fn next_frame<B: Body + Unpin>(body: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test]
    async fn a_silent_body_ends_with_an_error_at_its_pace_and_is_counted() {
        for (pace, expected) in [
            (
                RequestPace {
                    read_timeout: Duration::from_millis(150),
                    min_body_bytes_per_sec: 0,
                    min_rate_grace: Duration::ZERO,
                },
                Cut::Deadline,
            ),
            (
                RequestPace {
                    read_timeout: Duration::from_secs(30),
                    min_body_bytes_per_sec: 100,
                    min_rate_grace: Duration::from_millis(150),
                },
                Cut::TooSlow,
            ),
        ] {
            let counters = Arc::new(TransportCounters::default());
            let clock = RequestClock::new(pace, counters.clone());
            clock.bytes_arrived();
            let started = Instant::now();
            let mut body = Box::pin(RequestBody::new(Silent, clock.clone()));
            let error = next_frame(&mut body).await.unwrap().unwrap_err();
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(140),
                "{expected:?} after {took:?}"
            );
            assert!(took < Duration::from_secs(5), "{expected:?} after {took:?}");
            match (expected, error) {
                (Cut::Deadline, BodyError::Deadline) | (Cut::TooSlow, BodyError::TooSlow) => {}
                (expected, error) => panic!("{expected:?}: {error}"),
            }
            let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
            assert_eq!(
                (
                    count(&counters.cut_at_deadline),
                    count(&counters.cut_too_slow)
                ),
                match expected {
                    Cut::Deadline => (1, 0),
                    Cut::TooSlow => (0, 1),
                }
            );
            // Dropping the body ends the request: the next byte begins the next one.
            drop(body);
            assert_eq!(clock.first_byte.load(Ordering::Relaxed), WAITING);
        }
    }
}
