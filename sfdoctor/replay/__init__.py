"""`sfdoctor replay`: run a training script with instrumented ScheduleFree optimizers."""
