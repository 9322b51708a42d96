#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { addComplianceChecks } from './compliance';
import { SampleStack, sampleStackPropsFromContext } from './sample-stack';

const app = new App();
new SampleStack(app, 'SealedInference', sampleStackPropsFromContext(app));
addComplianceChecks(app);
app.synth();
