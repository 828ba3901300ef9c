//! Robust statistics: median, MAD/IQR scale, capped one-sided robust z, saturating
//! evidence strength.

/// Highest z any single comparison may contribute.
pub const Z_CAP: f64 = 20.0;

/// The q-quantile of `values` (linear interpolation); NaN when empty. Sorts in place.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    let position = (values.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
    let fraction = position - lo as f64;
    values[lo] + (values[hi] - values[lo]) * fraction
}

/// Location and scale of a baseline sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Robust {
    /// The median.
    pub median: f64,
    /// max(1.4826·MAD, IQR/1.349, floor).
    pub scale: f64,
}

impl Robust {
    /// Fits median and scale; `floor` keeps flat baselines from making z explode.
    pub fn fit(values: &[f64], floor: f64) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        let median = quantile(&mut sorted, 0.5);
        let iqr = quantile(&mut sorted, 0.75) - quantile(&mut sorted, 0.25);
        let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        let mad = quantile(&mut deviations, 0.5);
        let scale = (1.4826 * mad).max(iqr / 1.349).max(floor).max(1e-12);
        Some(Robust { median, scale })
    }

    /// z of `x` above the median, capped to [0, Z_CAP].
    pub fn z_up(&self, x: f64) -> f64 {
        ((x - self.median) / self.scale).clamp(0.0, Z_CAP)
    }

    /// z of `x` below the median, capped to [0, Z_CAP].
    pub fn z_down(&self, x: f64) -> f64 {
        ((self.median - x) / self.scale).clamp(0.0, Z_CAP)
    }
}

/// Evidence strength in [0, 1) from a z: saturating, so no single series dominates.
pub fn strength(z: f64) -> f64 {
    1.0 - (-z.max(0.0) / 4.0).exp()
}

/// z of a rate `hits/total` in the window against the baseline's rate, with
/// shrinkage `(k+1)/(n+2)` and a binomial scale; one-sided (up), capped.
pub fn rate_z(hits: u64, total: u64, base_hits: u64, base_total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let p = (hits as f64 + 1.0) / (total as f64 + 2.0);
    let p0 = (base_hits as f64 + 1.0) / (base_total as f64 + 2.0);
    let se = (p0 * (1.0 - p0) / total as f64).sqrt().max(0.005);
    ((p - p0) / se).clamp(0.0, Z_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robust_z_ignores_outliers_and_floors_flat_baselines() {
        let baseline = [10.0, 11.0, 9.0, 10.0, 10.5, 9.5, 500.0];
        let fit = Robust::fit(&baseline, 0.1).unwrap();
        assert!((fit.median - 10.0).abs() < 1e-9);
        assert!(fit.z_up(20.0) > 5.0);
        assert_eq!(fit.z_down(20.0), 0.0);
        let flat = Robust::fit(&[0.0; 10], 1.0).unwrap();
        assert_eq!(flat.z_up(3.0), 3.0);
        assert_eq!(flat.z_up(1e9), Z_CAP);
        assert!(strength(0.0) == 0.0 && strength(Z_CAP) < 1.0 && strength(4.0) > 0.6);
    }

    #[test]
    fn rate_z_needs_volume() {
        assert!(rate_z(50, 100, 1, 1000) >= 10.0);
        assert_eq!(rate_z(0, 100, 10, 100), 0.0);
    }
}
