//! `ClaimHealthProbe`: who probes an account's health next. The claim is a
//! counters claim (`probe:<account id>`), so among every edge of a
//! deployment sharing the counters, one takes it per hold and the others
//! skip the account until the hold ends.

use tollgate_core::GatewayError;
use tollgate_proto::v1;

use crate::QuotaService;
use crate::errors::from_counters;

impl QuotaService {
    pub(crate) async fn claim_health_probe(
        &self,
        request: v1::ClaimHealthProbeRequest,
    ) -> Result<v1::ClaimHealthProbeReply, GatewayError> {
        if request.account_id.is_empty() {
            return Err(GatewayError::invalid(
                "account_id",
                "account_id is required",
            ));
        }
        if request.hold_ms <= 0 {
            return Err(GatewayError::invalid("hold_ms", "hold_ms must be positive"));
        }
        let claimed = self
            .counters
            .claim(
                &format!("probe:{}", request.account_id),
                request.hold_ms,
                self.clock.now_ms(),
            )
            .await
            .map_err(from_counters)?;
        Ok(v1::ClaimHealthProbeReply { claimed })
    }
}
