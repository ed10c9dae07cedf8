"""The vendor conformance kit: ``axis conformance run`` drives a vendor's system through the
documented exchanges against a real, throwaway hub and judges each rule of the wire contract."""
