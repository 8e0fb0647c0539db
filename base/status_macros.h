#pragma once
// Propagation helpers for absl::Status / absl::StatusOr at fallible
// boundaries. Header-only; every module may use it (it depends on nothing in
// the project).
#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MLA_STATUS_CONCAT_INNER(a, b) a##b
#define MLA_STATUS_CONCAT(a, b) MLA_STATUS_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define MLA_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    ::absl::Status mla_status_ = (expr);           \
    if (!mla_status_.ok()) return mla_status_;     \
  } while (0)

// `MLA_ASSIGN_OR_RETURN(auto x, MakeX());` binds the value or returns the error.
#define MLA_ASSIGN_OR_RETURN(lhs, expr) \
  MLA_ASSIGN_OR_RETURN_IMPL(MLA_STATUS_CONCAT(mla_statusor_, __LINE__), lhs, expr)
#define MLA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
