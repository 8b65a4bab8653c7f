module pifoundry.invalid/pifoundry-attach

go 1.19
