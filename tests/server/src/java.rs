//! What the real server inherits from Java rather than from Apollo: `String.hashCode` and
//! the iteration order of `HashMap`/`HashSet`, and how Gson reads the `notifications`
//! parameter of `/notifications/v2` into `List<ApolloConfigNotification>`.

use serde_json::Value;

/// `java.lang.String#hashCode` (over UTF-16 code units, wrapping).
pub fn string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// `HashMap.hash`: the bucket index is this value masked by the table size minus one.
fn spread(s: &str) -> u32 {
    let h = string_hash(s) as u32;
    h ^ (h >> 16)
}

/// Table size of a `HashMap` made with the default constructor after `n` insertions
/// (16, doubled whenever the size passes three quarters of it).
fn default_table(n: usize) -> usize {
    grow(16, n)
}

/// Table size of Guava's `Sets.newHashSetWithExpectedSize(n)` after `n` insertions.
fn expected_size_table(n: usize) -> usize {
    // Maps.capacity of the Guava Apollo pins (29): n + 1 below 3, else
    // (int) (n / 0.75f + 1); HashMap rounds it up to a power of two. (Guava 33 computes
    // ceil(n / 0.75), a smaller table for some n; for fewer than 6 names both agree.)
    let capacity = if n < 3 {
        n + 1
    } else {
        (n as f32 / 0.75 + 1.0) as usize
    };
    grow(capacity.max(1).next_power_of_two(), n)
}

fn grow(mut table: usize, n: usize) -> usize {
    while n * 4 > table * 3 {
        table *= 2;
    }
    table
}

/// Iteration order of a `HashMap` whose keys were inserted in the order of `order`
/// (indices into `names`; no key replaced by another, fewer than 8 keys per bucket): by
/// bucket, and within a bucket in insertion order (Java 8+ keeps it when resizing).
fn bucket_order(names: &[&str], order: Vec<usize>, table: usize) -> Vec<usize> {
    let mask = (table - 1) as u32;
    let mut keyed: Vec<(u32, usize)> = order
        .into_iter()
        .map(|i| (spread(names[i]) & mask, i))
        .collect();
    keyed.sort_by_key(|(bucket, _)| *bucket); // stable
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// The order in which `NotificationControllerV2` lists the namespaces of an immediate
/// answer, as indices into `names` (the request's normalised names, each once, in
/// request order): they go into a `HashMap` (`filterNotifications`), whose key set is
/// copied into `Sets.newHashSetWithExpectedSize`, which is iterated.
pub fn poll_answer_order(names: &[&str]) -> Vec<usize> {
    let n = names.len();
    let first = bucket_order(names, (0..n).collect(), default_table(n));
    bucket_order(names, first, expected_size_table(n))
}

/// One element of the `notifications` list as Gson reads it into an
/// `ApolloConfigNotification`: `None` for a JSON `null` element.
pub type Notification = Option<(Option<String>, i64)>;

/// Reads `notifications` as Gson does into `List<ApolloConfigNotification>`: `Err` where
/// Gson throws (the real server then answers 400 `invalid notifications format`).
///
/// Gson's type adapters are followed: a `String` field takes a number or a boolean as
/// its text; a `long` field takes an integral number or a string holding one
/// (`"-1"` is -1), and a `null` or missing one stays 0 (the field's default); unknown
/// fields are skipped; `messages` must have the shape of `ApolloNotificationMessages`.
/// The lenient syntax Gson would also accept (comments, single quotes, unquoted names)
/// is not: it is a 400 here.
pub fn parse_notifications(raw: &str) -> Result<Vec<Notification>, ()> {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(raw) else {
        return Err(());
    };
    items
        .iter()
        .map(|item| match item {
            Value::Null => Ok(None),
            Value::Object(o) => {
                let name = match o.get("namespaceName") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(gson_string(v)?),
                };
                let id = match o.get("notificationId") {
                    None | Some(Value::Null) => 0,
                    Some(v) => gson_long(v)?,
                };
                match o.get("messages") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(m)) => match m.get("details") {
                        None | Some(Value::Null) => {}
                        Some(Value::Object(d)) => {
                            for v in d.values() {
                                if !v.is_null() {
                                    gson_long(v)?;
                                }
                            }
                        }
                        Some(_) => return Err(()),
                    },
                    Some(_) => return Err(()),
                }
                Ok(Some((name, id)))
            }
            _ => Err(()),
        })
        .collect()
}

/// Gson's `String` adapter: strings, numbers (their text) and booleans.
fn gson_string(v: &Value) -> Result<String, ()> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(()),
    }
}

/// Gson's `long` adapter (`JsonReader#nextLong`): an integral number, or a string that
/// parses as a long or as a double with an integral value.
fn gson_long(v: &Value) -> Result<i64, ()> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Ok(i),
            None => integral(n.as_f64().ok_or(())?),
        },
        Value::String(s) => match s.parse::<i64>() {
            Ok(i) => Ok(i),
            Err(_) => integral(s.trim().parse::<f64>().map_err(|_| ())?),
        },
        _ => Err(()),
    }
}

fn integral(d: f64) -> Result<i64, ()> {
    let i = d as i64;
    if i as f64 == d { Ok(i) } else { Err(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_string_hash() {
        assert_eq!(string_hash(""), 0);
        assert_eq!(string_hash("application"), 1_554_253_136);
        assert_eq!(string_hash("exception"), 1_481_625_679);
        // Wrapping arithmetic and UTF-16 units.
        assert_eq!(string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(string_hash("é"), 0xe9);
    }

    #[test]
    fn hash_set_order_is_not_request_order() {
        // The keys of Apollo's exception body in a default HashMap (16 slots).
        let names = ["status", "message", "timestamp", "exception"];
        assert_eq!(bucket_order(&names, vec![0, 1, 2, 3], 16), [3, 1, 0, 2]);
        assert_eq!(expected_size_table(1), 2);
        assert_eq!(expected_size_table(2), 4);
        assert_eq!(expected_size_table(3), 8);
        assert_eq!(expected_size_table(5), 8);
        assert_eq!(expected_size_table(6), 16);
        assert_eq!(expected_size_table(12), 32);
        assert_eq!(default_table(12), 16);
        assert_eq!(default_table(13), 32);
        // alpha, beta, gamma, delta, epsilon → epsilon, delta, beta, gamma, alpha.
        let names = ["alpha", "beta", "gamma", "delta", "epsilon"];
        assert_eq!(poll_answer_order(&names), [4, 3, 1, 2, 0]);
    }

    #[test]
    fn gson_reading() {
        let p = |s: &str| parse_notifications(s);
        assert_eq!(
            p(r#"[{"namespaceName":"a","notificationId":"-1"}]"#),
            Ok(vec![Some((Some("a".into()), -1))])
        );
        assert_eq!(
            p(r#"[{"namespaceName":1,"notificationId":2.0},null,{}]"#),
            Ok(vec![Some((Some("1".into()), 2)), None, Some((None, 0))])
        );
        assert_eq!(
            p(r#"[{"namespaceName":true,"x":[1],"messages":{"details":{"k":"3"}}}]"#),
            Ok(vec![Some((Some("true".into()), 0))])
        );
        for bad in [
            "",
            "null",
            "{}",
            "[1]",
            "[[]]",
            r#"[{"namespaceName":{}}]"#,
            r#"[{"notificationId":1.5}]"#,
            r#"[{"notificationId":"x"}]"#,
            r#"[{"notificationId":true}]"#,
            r#"[{"messages":[]}]"#,
            r#"[{"messages":{"details":{"k":"x"}}}]"#,
        ] {
            assert_eq!(p(bad), Err(()), "{bad}");
        }
    }
}
