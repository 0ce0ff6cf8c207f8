//! Where a lot is, and how far it is from where a driver wants to be.

use serde::{Deserialize, Serialize};

/// The mean radius of the Earth, metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// The widest search for lots near a place, metres.
pub const NEAR_RADIUS_MAX_M: f64 = 50_000.0;
/// The most lots a search returns, nearest first.
pub const NEAR_LIMIT: i64 = 20;

// ANCHOR: location
/// A point on the Earth, in degrees (WGS 84 latitude and longitude).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLocation")]
pub struct Location {
    latitude: f64,
    longitude: f64,
}

/// Why a location was refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum LocationError {
    /// Latitude outside -90..=90, or not a number.
    #[error("latitude must be between -90 and 90 degrees")]
    Latitude,
    /// Longitude outside -180..=180, or not a number.
    #[error("longitude must be between -180 and 180 degrees")]
    Longitude,
    /// A search radius outside 1 m to [`NEAR_RADIUS_MAX_M`].
    #[error("the radius must be between 1 and {NEAR_RADIUS_MAX_M} metres")]
    Radius,
}

impl Location {
    /// Checks the ranges (NaN is refused by both).
    pub fn new(latitude: f64, longitude: f64) -> Result<Self, LocationError> {
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(LocationError::Latitude);
        }
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(LocationError::Longitude);
        }
        Ok(Self {
            latitude,
            longitude,
        })
    }

    /// Degrees north.
    pub fn latitude(&self) -> f64 {
        self.latitude
    }

    /// Degrees east.
    pub fn longitude(&self) -> f64 {
        self.longitude
    }
}

/// The great-circle distance between two points, metres (haversine). The
/// SQL of the PostgreSQL store computes the same formula.
pub fn distance_m(a: &Location, b: &Location) -> f64 {
    let (phi1, phi2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dphi = phi2 - phi1;
    let dlambda = (b.longitude - a.longitude).to_radians();
    let h = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}
// ANCHOR_END: location

/// The wire form of a location, checked on the way in.
#[derive(Deserialize)]
struct RawLocation {
    latitude: f64,
    longitude: f64,
}

impl TryFrom<RawLocation> for Location {
    type Error = LocationError;

    fn try_from(raw: RawLocation) -> Result<Self, Self::Error> {
        Self::new(raw.latitude, raw.longitude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(lat: f64, lon: f64) -> Location {
        Location::new(lat, lon).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn known_distances() {
        // One degree of latitude is about 111.2 km.
        let d = distance_m(&at(0.0, 0.0), &at(1.0, 0.0));
        assert!((d - 111_195.0).abs() < 1.0, "{d}");
        // Paris Gare de Lyon to Gare d'Austerlitz, across the Seine: about 900 m.
        let d = distance_m(&at(48.8443, 2.3743), &at(48.8422, 2.3651));
        assert!((600.0..1_000.0).contains(&d), "{d}");
        assert_eq!(Location::new(91.0, 0.0), Err(LocationError::Latitude));
        assert_eq!(Location::new(0.0, f64::NAN), Err(LocationError::Longitude));
    }

    proptest! {
        #[test]
        fn distance_is_a_metric(
            a in (-90.0f64..90.0, -180.0f64..180.0),
            b in (-90.0f64..90.0, -180.0f64..180.0),
            c in (-90.0f64..90.0, -180.0f64..180.0),
        ) {
            let (a, b, c) = (at(a.0, a.1), at(b.0, b.1), at(c.0, c.1));
            prop_assert!(distance_m(&a, &a) < 1e-6);
            prop_assert!((distance_m(&a, &b) - distance_m(&b, &a)).abs() < 1e-6);
            prop_assert!(distance_m(&a, &c) <= distance_m(&a, &b) + distance_m(&b, &c) + 1e-6);
            prop_assert!(distance_m(&a, &b) <= std::f64::consts::PI * EARTH_RADIUS_M + 1e-6);
        }
    }
}
