//! Server host names, resolved at most once per `dns_max_ttl` (PgBouncer's DNS cache): a pool
//! that opens servers in a burst asks the resolver once, and SHOW DNS_HOSTS lists what is held.
//! getaddrinfo gives no record TTL, so as in PgBouncer the configured one is all there is.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::FastMap;

/// How long answers are kept: `dns_max_ttl` for addresses, `dns_nxdomain_ttl` for failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsTtl {
    /// Lifetime of a name's addresses; zero caches nothing.
    pub found: Duration,
    /// Lifetime of a failed lookup; zero caches nothing.
    pub failed: Duration,
}

/// What a server connect resolves names with: the shared cache and the TTLs in force.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    /// The process's cache (one per [`super::PoolRegistry`]).
    pub cache: Arc<DnsCache>,
    /// `dns_max_ttl` and `dns_nxdomain_ttl`.
    pub ttl: DnsTtl,
}

impl Resolver {
    /// `host`'s addresses: an IP literal as it is (never cached or listed), a name through
    /// [`DnsCache::resolve`].
    pub async fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![ip]),
            Err(_) => self.cache.resolve(host, self.ttl).await,
        }
    }
}

/// A cached answer: the addresses, or the failure's kind and text.
#[derive(Clone, Debug)]
enum Answer {
    Found(Vec<IpAddr>),
    Failed(io::ErrorKind, String),
}

#[derive(Debug)]
struct Entry {
    answer: Answer,
    expires: Instant,
}

/// One SHOW DNS_HOSTS row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedName {
    /// The host name as configured.
    pub hostname: String,
    /// Whole seconds until the entry expires.
    pub ttl: u64,
    /// The addresses, `ip:0` comma-separated as PgBouncer prints them; empty for a failure.
    pub addrs: String,
}

/// The cache; shared by every pool.
#[derive(Debug, Default)]
pub struct DnsCache {
    names: Mutex<FastMap<String, Entry>>,
    in_flight: AtomicUsize,
}

impl DnsCache {
    /// `host`'s addresses, from the cache while its entry lives, else from the resolver.
    pub async fn resolve(&self, host: &str, ttl: DnsTtl) -> io::Result<Vec<IpAddr>> {
        if let Some(answer) = self.cached(host, Instant::now()) {
            return into_result(answer);
        }
        let looked_up = {
            // A guard, not a pair of calls: a server connect that times out drops this future
            // mid-lookup, and the count must still come down.
            let _counted = crate::stats::Counted::new(&self.in_flight);
            tokio::net::lookup_host((host, 0)).await
        };
        let answer = match looked_up {
            Ok(addrs) => {
                let mut ips: Vec<IpAddr> = Vec::new();
                for ip in addrs.map(|a| a.ip()) {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                if ips.is_empty() {
                    Answer::Failed(io::ErrorKind::NotFound, format!("{host}: no addresses"))
                } else {
                    Answer::Found(ips)
                }
            }
            Err(e) => Answer::Failed(e.kind(), e.to_string()),
        };
        let keep = match answer {
            Answer::Found(_) => ttl.found,
            Answer::Failed(..) => ttl.failed,
        };
        if !keep.is_zero() {
            self.store(host, answer.clone(), Instant::now() + keep);
        }
        into_result(answer)
    }

    fn cached(&self, host: &str, now: Instant) -> Option<Answer> {
        let names = self.lock();
        names
            .get(host)
            .filter(|e| e.expires > now)
            .map(|e| e.answer.clone())
    }

    fn store(&self, host: &str, answer: Answer, expires: Instant) {
        let mut names = self.lock();
        // Expired entries go here, so the map holds no more than the names in use.
        let now = Instant::now();
        names.retain(|_, e| e.expires > now);
        names.insert(host.to_owned(), Entry { answer, expires });
    }

    /// The live entries, by host name (SHOW DNS_HOSTS).
    pub fn names(&self) -> Vec<CachedName> {
        let now = Instant::now();
        let names = self.lock();
        let mut rows: Vec<CachedName> = names
            .iter()
            .filter(|(_, e)| e.expires > now)
            .map(|(host, e)| CachedName {
                hostname: host.clone(),
                ttl: e.expires.saturating_duration_since(now).as_secs(),
                addrs: match &e.answer {
                    Answer::Found(ips) => ips
                        .iter()
                        .map(|ip| SocketAddr::new(*ip, 0).to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    Answer::Failed(..) => String::new(),
                },
            })
            .collect();
        rows.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        rows
    }

    /// How many names are held (SHOW LISTS `dns_names`).
    pub fn held(&self) -> usize {
        let now = Instant::now();
        self.lock().values().filter(|e| e.expires > now).count()
    }

    /// Lookups under way (SHOW LISTS `dns_queries`).
    pub fn queries(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<String, Entry>> {
        self.names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn into_result(answer: Answer) -> io::Result<Vec<IpAddr>> {
    match answer {
        Answer::Found(ips) => Ok(ips),
        Answer::Failed(kind, text) => Err(io::Error::new(kind, text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: DnsTtl = DnsTtl {
        found: Duration::from_secs(15),
        failed: Duration::from_secs(15),
    };

    #[tokio::test]
    async fn a_resolved_name_is_listed_with_its_addresses_and_remaining_ttl() {
        let cache = DnsCache::default();
        let ips = cache.resolve("localhost", KEEP).await.unwrap();
        assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
        let names = cache.names();
        assert_eq!(names.len(), 1);
        assert_eq!(names[0].hostname, "localhost");
        assert!(names[0].ttl <= 15 && names[0].ttl >= 13, "{names:?}");
        assert!(
            names[0].addrs.split(',').all(|a| a.ends_with(":0")),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn a_cached_answer_is_served_without_asking_again() {
        let cache = DnsCache::default();
        let planted = vec![IpAddr::from([192, 0, 2, 7])];
        let expires = Instant::now() + Duration::from_secs(60);
        cache.store("db.example", Answer::Found(planted.clone()), expires);
        assert_eq!(cache.resolve("db.example", KEEP).await.unwrap(), planted);
    }

    #[tokio::test]
    async fn an_expired_entry_is_looked_up_again_and_dropped_from_the_list() {
        let cache = DnsCache::default();
        let gone = Instant::now();
        cache.store(
            "localhost",
            Answer::Found(vec![IpAddr::from([192, 0, 2, 7])]),
            gone,
        );
        assert!(cache.names().is_empty());
        let ips = cache.resolve("localhost", KEEP).await.unwrap();
        assert!(ips.iter().all(IpAddr::is_loopback), "{ips:?}");
    }

    #[tokio::test]
    async fn a_failure_is_cached_for_the_nxdomain_ttl_only() {
        let cache = DnsCache::default();
        let expires = Instant::now() + Duration::from_secs(60);
        cache.store(
            "nowhere.invalid",
            Answer::Failed(io::ErrorKind::NotFound, "no such host".into()),
            expires,
        );
        let err = cache.resolve("nowhere.invalid", KEEP).await.unwrap_err();
        assert_eq!(err.to_string(), "no such host");
        assert_eq!(cache.names()[0].addrs, "");
    }

    #[tokio::test]
    async fn a_lookup_dropped_midway_is_no_longer_counted() {
        let cache = DnsCache::default();
        let mut lookup = Box::pin(cache.resolve("localhost", KEEP));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        // Polled once, the lookup waits on the resolver thread.
        if lookup.as_mut().poll(&mut cx).is_pending() {
            assert_eq!(cache.queries(), 1);
        }
        // What a server_connect_timeout does to a slow lookup.
        drop(lookup);
        assert_eq!(cache.queries(), 0);
    }

    #[tokio::test]
    async fn ip_literals_skip_the_cache() {
        let resolver = Resolver {
            cache: Arc::default(),
            ttl: KEEP,
        };
        for (host, ip) in [
            ("127.0.0.1", IpAddr::from([127, 0, 0, 1])),
            ("::1", IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
        ] {
            assert_eq!(resolver.resolve(host).await.unwrap(), vec![ip]);
        }
        assert_eq!(resolver.cache.held(), 0, "{:?}", resolver.cache.names());
    }

    #[tokio::test]
    async fn a_zero_ttl_caches_nothing() {
        let cache = DnsCache::default();
        let off = DnsTtl {
            found: Duration::ZERO,
            failed: Duration::ZERO,
        };
        cache.resolve("localhost", off).await.unwrap();
        assert!(cache.names().is_empty());
    }
}
