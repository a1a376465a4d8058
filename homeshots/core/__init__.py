"""The floor: errors, domain types, settings, input rows and addresses. Imports nothing of ours."""
