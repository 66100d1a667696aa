// The hooks of the config schema (yaml_schema.h) that the parts of the loader share: config.cc
// reads the file's top level and services, gateway_config_schema.cc its gateway section. Each
// is found by argument-dependent lookup, so it is declared here in namespace prescale, the
// namespace of the types it describes, and every part sees the same one. Not public API.
#pragma once

#include "core/config.h"
#include "core/internal/yaml_schema.h"

namespace prescale {

// The YAML spelling of each enum value (config.cc).
internal::EnumNames<WorldKind> enum_names(WorldKind tag);
internal::EnumNames<LogLevel> enum_names(LogLevel tag);
internal::EnumNames<LogFormat> enum_names(LogFormat tag);
internal::EnumNames<PolicyName> enum_names(PolicyName tag);
internal::EnumNames<ServiceKind> enum_names(ServiceKind tag);
internal::EnumNames<RetryOn> enum_names(RetryOn tag);
internal::EnumNames<LoadBalancerKind> enum_names(LoadBalancerKind tag);

// The `gateway` section (gateway_config_schema.cc).
void describe(internal::Schema<GatewayConfig>& s);

}  // namespace prescale
