package config

import "slices"

// The allowed values of the enumerated keys of a client, trusted issuer or
// OAuth server entry, for forms that offer them as choices. Each call
// returns a fresh copy, in the order the documentation lists them.

// ClientAuthMethods are the values of a client's token_endpoint_auth_method.
func ClientAuthMethods() []string { return slices.Clone(clientAuthMethods) }

// ConsentModes are the values of a client's consent.
func ConsentModes() []string { return slices.Clone(consentModes) }

// GrantTypes are the values a client's grant_types may hold.
func GrantTypes() []string { return slices.Clone(grantTypes) }

// SubjectClaims are the values of a trusted issuer's subject_claim.
func SubjectClaims() []string { return slices.Clone(subjectClaims) }

// ScopeClaims are the values of a trusted issuer's scope_claim.
func ScopeClaims() []string { return slices.Clone(scopeClaims) }

// OutboundAuthMethods are the values of an OAuth server's client_auth.
func OutboundAuthMethods() []string { return slices.Clone(outboundAuth) }
