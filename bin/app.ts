#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { addComplianceChecks } from './compliance';
import { SampleStack, sampleStackPropsFromContext } from './sample-stack';

// CloudFormation's built-in template validation is most of a synth's time and memory (about 5 s and 350 MB of WASM
// rules); the test suite runs it on this same app with its findings as errors (test/sample-app.test.ts).
const app = new App({ builtinCloudFormationValidation: false });
new SampleStack(app, 'SealedInference', sampleStackPropsFromContext(app));
addComplianceChecks(app);
app.synth();
