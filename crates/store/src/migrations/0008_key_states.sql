-- Keys of a PKCS#11 token are recorded `generating` (with their label) before the token makes
-- them, and stay `destroying` between a revocation and the token's destruction; the upkeep
-- looks for both. Only those rows are indexed: software keys (`active`, `destroyed`) and
-- finished token keys cost issuance no index page.
CREATE INDEX keys_left_half_way ON keys (created_at) WHERE state IN ('generating', 'destroying');
